//! `sluice_l7::h2` on arbitrary bytes: a server connection fed the client preface and then the
//! input, in reads whose size the first byte sets (what a read leaves unconsumed stays at the
//! front of the next input, as the driver keeps it). Its output is taken as it comes. The events
//! must be those of one read of everything (DATA as bytes, its pieces joined: a payload is
//! handed over as its bytes arrive), and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_l7::h2::conn::{Config, Conn, Event, Role};
use sluice_l7::h2::frame::PREFACE;

/// The events of a connection fed `bytes` in reads of `step`, as comparable text.
fn run(bytes: &[u8], step: usize) -> Vec<String> {
    let mut conn = Conn::new(Role::Server, Config::default());
    let mut pending: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    // DATA pieces not yet written as an event: (stream, bytes, end, where they go).
    let mut data_runs: Vec<(sluice_l7::h2::StreamId, Vec<u8>, bool, usize)> = Vec::new();
    let flush = |runs: &mut Vec<(sluice_l7::h2::StreamId, Vec<u8>, bool, usize)>,
                 events: &mut Vec<String>| {
        for (s, bytes, end, _) in runs.drain(..) {
            events.push(format!("data {s:?} {bytes:?} {end}"));
        }
    };
    let mut fed = 0;
    loop {
        // Take what the connection has to write, as a driver would.
        let n = conn.write_buf().len();
        conn.wrote(n);
        let r = conn.recv(&pending, 0);
        let consumed = r.consumed;
        assert!(consumed <= pending.len());
        if let Some(e) = r.event {
            // A DATA frame's payload may come in pieces as the bytes arrive: consecutive pieces
            // of one stream are one event here.
            if let Event::Data { stream, data, end_stream } = &e {
                let (s, bytes, end) = (*stream, pending[data.clone()].to_vec(), *end_stream);
                conn.release(s, bytes.len());
                match data_runs.last_mut() {
                    Some((ls, lb, lend, at)) if *ls == s && !*lend && *at == events.len() => {
                        lb.extend_from_slice(&bytes);
                        *lend = end;
                    }
                    _ => data_runs.push((s, bytes, end, events.len())),
                }
                pending.drain(..consumed);
                continue;
            }
            flush(&mut data_runs, &mut events);
            let text = match &e {
                Event::GoAway { last_stream, code, debug } => {
                    format!("goaway {last_stream:?} {code:?} {:?}", &pending[debug.clone()])
                }
                other => format!("{other:?}"),
            };
            let stop = matches!(e, Event::ConnectionError { .. });
            events.push(text);
            pending.drain(..consumed);
            if stop {
                flush(&mut data_runs, &mut events);
                return events;
            }
            continue;
        }
        pending.drain(..consumed);
        if consumed > 0 {
            continue;
        }
        if fed >= bytes.len() {
            flush(&mut data_runs, &mut events);
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
