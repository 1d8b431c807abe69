//! What the fuzz targets share: the warm worker and the frames it is fed ([`frames`]), a counting
//! allocator ([`alloc`]), the hostile table file ([`table_file`]), and the seed corpus each target
//! writes for itself ([`seeds`]).
//!
//! The targets (`fuzz_targets/`) are thin: each turns the fuzzer's bytes into calls of one parser
//! of the workspace and checks what must hold whatever the bytes. Seeds are built here, from the
//! same builders and fixtures as the workspace's tests, when `fuzz/run` asks for them
//! (`SLUICE_FUZZ_SEEDS`): nothing but this code is committed, so the repository stays small and
//! the seeds follow the formats as they change.

pub mod alloc;
pub mod frames;
pub mod seeds;
pub mod table_file;
