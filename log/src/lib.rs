//! How every Sluice binary logs: [`tracing`] events, written one line each to standard error.
//!
//! - **Filter**: `SLUICE_LOG`, else `RUST_LOG` (the `tracing-subscriber` `EnvFilter` syntax:
//!   `info`, `sluice_control=debug,info`…); `info` when neither is set.
//! - **Under systemd** (`JOURNAL_STREAM` names our standard error): no timestamp and no colour
//!   (the journal stamps each line itself), and each line starts with its syslog priority
//!   (`<3>` error … `<7>` trace), which journald reads as the entry's priority, so
//!   `journalctl -p warning -u sluice-gateway` shows warnings and errors only.
//! - **Elsewhere**: a timestamp and the level; colour only on a terminal.
//!
//! Logging is for the control path: never on the per-packet path (a worker's loop logs nothing).
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::os::fd::AsFd;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub use tracing::{debug, error, info, trace, warn};

/// Installs the subscriber for this process; `default` is the filter when neither `SLUICE_LOG`
/// nor `RUST_LOG` is set (e.g. `"info"`). A filter that does not parse is reported and the
/// default used. Calling it twice keeps the first.
pub fn init(default: &str) {
    let env = |var| std::env::var(var).ok();
    let (filter, bad) = filter(env("SLUICE_LOG"), env("RUST_LOG"), default);
    let journald = std::env::var("JOURNAL_STREAM").is_ok_and(|v| is_stream(&v, &std::io::stderr()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = if journald {
        builder
            .with_ansi(false)
            .event_format(Journald(Format::default().without_time().with_level(false)))
            .try_init()
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
    if installed.is_ok()
        && let Some((var, e)) = bad
    {
        tracing::warn!("{var}: {e}; logging at {default:?}");
    }
}

/// The filter `SLUICE_LOG` gives, else `RUST_LOG`, else `default`; and which variable was wrong
/// and why, when the one given does not parse.
fn filter(
    sluice_log: Option<String>,
    rust_log: Option<String>,
    default: &str,
) -> (EnvFilter, Option<(&'static str, String)>) {
    let given = sluice_log.map(|v| ("SLUICE_LOG", v)).or(rust_log.map(|v| ("RUST_LOG", v)));
    match given {
        None => (EnvFilter::new(default), None),
        Some((var, v)) => match EnvFilter::try_new(&v) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(default), Some((var, e.to_string()))),
        },
    }
}

/// Whether `fd` is the stream `JOURNAL_STREAM` names (`device:inode`): systemd sets it for a
/// service's standard output and error, and a child that inherited the variable but writes
/// elsewhere must not believe it (sd_journal_stream_fd(3)).
fn is_stream(journal_stream: &str, fd: &impl AsFd) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = journal_stream.split_once(':') else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    let Ok(fd) = fd.as_fd().try_clone_to_owned() else { return false };
    let Ok(meta) = std::fs::File::from(fd).metadata() else { return false };
    meta.dev() == dev && meta.ino() == ino
}

/// The syslog priority journald reads from a line's `<N>` prefix (sd-daemon(3)).
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// The default format, behind a `<N>` priority prefix.
struct Journald(Format<tracing_subscriber::fmt::format::Full, ()>);

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(w, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, w, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(
            [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG].map(|l| priority(&l)),
            [3, 4, 6, 7]
        );
    }

    #[test]
    fn sluice_log_comes_first_and_a_bad_filter_is_reported() {
        let (f, bad) = filter(Some("debug".into()), Some("error".into()), "info");
        assert_eq!((f.to_string(), bad), ("debug".to_owned(), None));
        let (f, bad) = filter(None, Some("sluice_control=trace".into()), "info");
        assert_eq!((f.to_string(), bad), ("sluice_control=trace".to_owned(), None));
        assert_eq!(filter(None, None, "warn").0.to_string(), "warn");
        let (f, bad) = filter(Some("sluice=[".into()), None, "info");
        assert_eq!(f.to_string(), "info");
        assert_eq!(bad.map(|b| b.0), Some("SLUICE_LOG"));
    }

    #[test]
    fn the_journal_is_recognised_by_device_and_inode_only() {
        use std::os::unix::fs::MetadataExt;
        let file =
            std::fs::File::create(std::env::temp_dir().join(format!("sluice-log-{}", std::process::id())))
                .unwrap();
        let m = file.metadata().unwrap();
        assert!(is_stream(&format!("{}:{}", m.dev(), m.ino()), &file));
        assert!(!is_stream(&format!("{}:{}", m.dev(), m.ino() + 1), &file));
        assert!(!is_stream("nonsense", &file));
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("sluice-log-{}", std::process::id())));
    }
}
