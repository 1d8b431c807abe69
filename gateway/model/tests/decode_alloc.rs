//! What decoding an image allocates, measured with `allocation_counter`: a small multiple of the
//! image's length, for a table of many small services (the most records per byte) and for a
//! hostile image whose services all claim one huge range of the u16 pool (refused before it
//! allocates; before the pool budget it decoded, asking for hundreds of times its size).

use sluice_model::Addr;
use sluice_model::image::layout::{header, service};
use sluice_model::image::{self, ImageError};
use sluice_model::maglev::is_prime;
use sluice_model::service::{
    BackendSpec, Conditions, Frontend, NatMode, Protocol, Scheduler, ServiceKey, ServiceSpec, ServiceTable,
    TableSpec,
};

/// Decodes `bytes`, returning the result and the bytes allocated meanwhile (all of them, freed
/// or not: an upper bound of the peak). `allocation_counter` installs a counting global
/// allocator in this test binary and counts this thread's allocations only.
fn decode_counted(bytes: &[u8]) -> (Result<ServiceTable, ImageError>, usize) {
    let mut r = None;
    let info = allocation_counter::measure(|| r = Some(image::decode(bytes)));
    (r.expect("decoded"), info.bytes_total as usize)
}

/// The most a decode may allocate per byte of image.
const FACTOR: usize = 8;

/// `n` services of one backend each (or none), one frontend, short names.
fn spec(n: usize, backends: bool) -> TableSpec {
    TableSpec {
        services: (0..n)
            .map(|i| ServiceSpec {
                name: format!("s{i}"),
                frontends: vec![ServiceKey {
                    frontend: Frontend::Address(Addr::from_v4([
                        198,
                        19,
                        (i / 250) as u8,
                        (i % 250) as u8 + 1,
                    ])),
                    port: 80,
                    protocol: Protocol::Tcp,
                }],
                backends: if backends {
                    vec![BackendSpec {
                        addr: Addr::from_v4([198, 18, 1, 1]),
                        port: 8080,
                        weight: 1,
                        conditions: Conditions::READY,
                    }]
                } else {
                    vec![]
                },
                scheduler: Scheduler::Maglev,
                affinity: None,
                nat: if backends { NatMode::FullNat } else { NatMode::Dnat },
                snat: if backends { vec![Addr::from_v4([198, 18, 0, 1])] } else { vec![] },
            })
            .collect(),
        ..TableSpec::default()
    }
}

#[test]
fn a_valid_table_decodes_within_a_small_multiple_of_its_size() {
    for (n, backends) in [(2000, false), (2000, true), (1, true)] {
        let bytes = image::encode(&ServiceTable::build(&spec(n, backends)).unwrap());
        let (r, allocated) = decode_counted(&bytes);
        assert_eq!(r.unwrap().services().len(), n);
        assert!(
            allocated <= FACTOR * bytes.len() + 4096,
            "{n} services (backends: {backends}): {allocated} bytes allocated for an image of {}",
            bytes.len()
        );
    }
}

#[test]
fn services_sharing_one_huge_pool_range_are_refused_without_allocating_for_it() {
    // Every service has one backend, so its eligible list and Maglev table are all zeros, and so
    // is the whole u16 pool: any prime-sized range of it is a valid Maglev table on its own.
    let n = 400;
    let mut bytes = image::encode(&ServiceTable::build(&spec(n, true)).unwrap());
    let pool = header::U16_POOL_LEN.read(&bytes);
    let prime = (1..=pool).rev().find(|&p| is_prime(p)).unwrap();
    for i in 0..n {
        let at = header::SERVICES_AT.read(&bytes) as usize + i * service::SIZE;
        let rec = &mut bytes[at..at + service::SIZE];
        service::MAGLEV_AT.write(rec, 0);
        service::MAGLEV_COUNT.write(rec, prime);
    }
    let (r, allocated) = decode_counted(&bytes);
    // (Not `unwrap_err`: a table decoded by mistake would be printed whole.)
    assert!(matches!(r, Err(ImageError::PoolOverclaimed("u16 pool"))), "{:?}", r.map(|t| t.services().len()));
    // What it would have asked for: every service a copy of nearly the whole pool.
    let asked = n * prime as usize * 2;
    assert!(asked > 100 * bytes.len(), "the image is hostile enough: {asked} for {}", bytes.len());
    assert!(allocated <= FACTOR * bytes.len(), "{allocated} bytes allocated for an image of {}", bytes.len());
}
