//! `sluice_l7::h2` on arbitrary bytes: a server connection fed the client preface and then the
//! input, in reads whose size the first byte sets (what a read leaves unconsumed stays at the
//! front of the next input, as the driver keeps it). Its output is taken as it comes. The events
//! must be those of one read of everything (DATA as bytes, not ranges), the connection must
//! never ask for more than a frame it could hold, and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_l7::h2::conn::{Config, Conn, Event, Role};
use sluice_l7::h2::frame::PREFACE;

/// The events of a connection fed `bytes` in reads of `step`, as comparable text.
fn run(bytes: &[u8], step: usize) -> Vec<String> {
    let mut conn = Conn::new(Role::Server, Config::default());
    let mut pending: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    let mut fed = 0;
    loop {
        // Take what the connection has to write, as a driver would.
        let n = conn.write_buf().len();
        conn.wrote(n);
        let r = conn.recv(&pending, 0);
        let consumed = r.consumed;
        assert!(consumed <= pending.len());
        if let Some(e) = r.event {
            let text = match &e {
                Event::Data { stream, data, end_stream } => {
                    format!("data {stream:?} {:?} {end_stream}", &pending[data.clone()])
                }
                Event::GoAway { last_stream, code, debug } => {
                    format!("goaway {last_stream:?} {code:?} {:?}", &pending[debug.clone()])
                }
                other => format!("{other:?}"),
            };
            let stop = matches!(e, Event::ConnectionError { .. });
            if let Event::Data { stream, data, .. } = &e {
                let (s, n) = (*stream, data.len());
                conn.release(s, n);
            }
            events.push(text);
            pending.drain(..consumed);
            if stop {
                return events;
            }
            continue;
        }
        pending.drain(..consumed);
        if consumed > 0 {
            continue;
        }
        if fed >= bytes.len() {
            return events;
        }
        let end = (fed + step).min(bytes.len());
        pending.extend_from_slice(&bytes[fed..end]);
        fed = end;
    }
}

fuzz_target!(init: sluice_fuzz::seeds::write_if_asked("h2"), |data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let step = usize::from(first % 64) + 1;
    let mut bytes = PREFACE.to_vec();
    bytes.extend_from_slice(rest);
    let whole = run(&bytes, bytes.len().max(1));
    let split = run(&bytes, step);
    assert_eq!(whole, split, "events differ with reads of {step}");
});
