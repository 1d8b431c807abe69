//! The contract between control and the gateway, end to end without root: a table is encoded
//! (`sluice_model::image`), published through the shared-memory file (`sluice_table`), adopted by a
//! reader, decoded and installed in a worker, which forwards with it; a new generation moves new
//! flows and keeps established ones; an invalid image is refused and the last good table stays.

mod common;

use std::sync::Arc;

use common::*;
use sluice_model::image;
use sluice_model::service::*;
use sluice_table::{Geometry, Publisher, Reader, Refresh};

struct TempPath(std::path::PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a gateway worker does at a batch boundary: refresh, and on a new generation decode and
/// install it — or keep the table it has if the image is refused.
fn adopt(reader: &mut Reader, h: &mut Harness) -> Result<u64, String> {
    match reader.refresh() {
        Refresh::Adopted(g) => {
            let payload = reader.payload().ok_or("no payload")?;
            let table = image::decode(payload).map_err(|e| e.to_string())?;
            h.worker.set_table(Arc::new(table));
            Ok(g)
        }
        Refresh::Unchanged => Err("unchanged".into()),
        Refresh::Refused(g, why) => Err(format!("generation {g} refused: {why}")),
    }
}

fn built(generation: u64, services: Vec<ServiceSpec>) -> ServiceTable {
    let t = table(generation, services);
    Arc::try_unwrap(t).unwrap_or_else(|t| (*t).clone())
}

#[test]
fn a_published_table_is_adopted_and_forwards() {
    let path = TempPath(std::env::temp_dir().join(format!("sluice-worker-table-{}", std::process::id())));
    let mut publisher = Publisher::create(&path.0, Geometry { slots: 3, slot_bytes: 4 << 20 }).unwrap();
    let mut reader = Reader::open(&path.0).unwrap();
    // The worker starts with an empty table: nothing is a service yet.
    let mut h = Harness::new(vec![]);
    assert!(matches!(
        h.send(&from(CLIENT_MAC, CLIENT, 1).to(GW_MAC, VIP, 80).tcp(SYN, b"")),
        Outcome::Kernel(_)
    ));

    // Generation 1: the standard services, web on backends 1–3.
    publisher.publish(&image::encode(&built(1, standard_services()))).unwrap();
    assert_eq!(adopt(&mut reader, &mut h), Ok(1));
    let Outcome::Tx(first) = h.send(&from(CLIENT_MAC, CLIENT, 4000).to(GW_MAC, VIP, 80).tcp(SYN, b"")) else {
        panic!("forwarded with the published table")
    };
    let first_backend = dst4(&first)[3];

    // Generation 2: that backend leaves web (a rollout); its established flow stays, new ones avoid it.
    let mut next = standard_services();
    let keep: Vec<u8> = [1u8, 2, 3].into_iter().filter(|&b| b != first_backend).collect();
    next[0].backends = backends(&keep, 8080, Conditions::READY);
    publisher.publish(&image::encode(&built(2, next))).unwrap();
    assert_eq!(adopt(&mut reader, &mut h), Ok(2));
    let Outcome::Tx(again) = h.send(&from(CLIENT_MAC, CLIENT, 4000).to(GW_MAC, VIP, 80).tcp(ack(1), b"x"))
    else {
        panic!()
    };
    assert_eq!(dst4(&again)[3], first_backend, "the established flow keeps its backend");
    for p in 5000..5030 {
        let Outcome::Tx(f) = h.send(&from(CLIENT_MAC, CLIENT, p).to(GW_MAC, VIP, 80).tcp(SYN, b"")) else {
            panic!()
        };
        assert_ne!(dst4(&f)[3], first_backend, "new flows avoid the removed backend");
    }

    // Generation 3 is not a table image (intact bytes, so the reader's checksum passes): the
    // decoder refuses it and the worker keeps forwarding with generation 2.
    publisher.publish(&[b'x'; 512]).unwrap();
    let e = adopt(&mut reader, &mut h).unwrap_err();
    assert!(e.contains("not a table image"), "{e}");
    assert_eq!(h.worker.l4().table().generation(), Generation(2));
    assert!(matches!(
        h.send(&from(CLIENT_MAC, CLIENT, 6000).to(GW_MAC, VIP, 80).tcp(SYN, b"")),
        Outcome::Tx(_)
    ));
}
