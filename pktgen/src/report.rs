//! What pktgen tells people and machines: a live line per second (on a terminal only), a
//! summary table, a JSON object, and an SVG of throughput over time and the latency
//! distribution.

use std::fmt::Write as _;

use crate::measure::Receiver;

/// One second of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Second {
    /// Seconds since the start (end of the interval).
    pub at: f64,
    /// Frames sent in the interval, per second.
    pub tx_pps: f64,
    /// Bits sent per second (frames with FCS, preamble and gap: what a wire carries).
    pub tx_bps: f64,
    /// Frames received back per second.
    pub rx_pps: f64,
    /// p99 latency over the run so far (ns).
    pub p99_ns: u64,
}

/// Bits a frame of `len` bytes (without FCS) takes on an Ethernet wire: FCS, preamble, gap.
pub fn wire_bits(len: usize) -> u64 {
    (len as u64 + 4 + 8 + 12) * 8
}

/// Human rate: `1.234 Mpps`.
pub fn si(v: f64, unit: &str) -> String {
    let (d, p) = match v.abs() {
        x if x >= 1e9 => (1e9, "G"),
        x if x >= 1e6 => (1e6, "M"),
        x if x >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    format!("{:.3} {p}{unit}", v / d)
}

/// The live line.
pub fn live(s: &Second, sent: u64, lost: Option<u64>) -> String {
    let mut l = format!("{:>5.0} s  tx {}  {}", s.at, si(s.tx_pps, "pps"), si(s.tx_bps, "bit/s"));
    if let Some(lost) = lost {
        let _ = write!(l, "  rx {}  lost {lost} of {sent}  p99 {}", si(s.rx_pps, "pps"), ns(s.p99_ns));
    }
    l
}

/// Human duration from ns.
pub fn ns(v: u64) -> String {
    match v {
        v if v >= 1_000_000 => format!("{:.2} ms", v as f64 / 1e6),
        v if v >= 1_000 => format!("{:.1} µs", v as f64 / 1e3),
        v => format!("{v} ns"),
    }
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Summary<'a> {
    /// Engine name.
    pub engine: &'a str,
    /// Frames sent.
    pub sent: u64,
    /// Bytes sent (frames without FCS).
    pub bytes: u64,
    /// Seconds spent sending.
    pub seconds: f64,
    /// The rate asked for (pps), if any.
    pub target_pps: Option<f64>,
    /// The receive side, if there was one.
    pub rx: Option<&'a Receiver>,
    /// Frames sent per size.
    pub sizes: Vec<(usize, u64)>,
}

impl Summary<'_> {
    /// Achieved rate (pps).
    pub fn pps(&self) -> f64 {
        if self.seconds > 0.0 { self.sent as f64 / self.seconds } else { 0.0 }
    }

    /// How far the achieved rate is from the target, in percent.
    pub fn rate_error_pct(&self) -> Option<f64> {
        self.target_pps.map(|t| (self.pps() - t) / t * 100.0)
    }

    /// The table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "{:<22} {}", "engine", self.engine);
        let _ = writeln!(t, "{:<22} {} frames in {:.3} s", "sent", self.sent, self.seconds);
        let _ = writeln!(t, "{:<22} {}", "rate", si(self.pps(), "pps"));
        let wire: u64 = self.sizes.iter().map(|&(s, n)| wire_bits(s) * n).sum();
        let _ = writeln!(t, "{:<22} {}", "on the wire", si(wire as f64 / self.seconds.max(1e-9), "bit/s"));
        if let (Some(target), Some(e)) = (self.target_pps, self.rate_error_pct()) {
            let _ = writeln!(t, "{:<22} {} ({e:+.3} %)", "target", si(target, "pps"));
        }
        if self.sizes.len() > 1 {
            for (s, n) in &self.sizes {
                let _ = writeln!(
                    t,
                    "{:<22} {n} ({:.1} %)",
                    format!("  {s}-byte frames"),
                    *n as f64 * 100.0 / self.sent.max(1) as f64
                );
            }
        }
        if let Some(rx) = self.rx {
            let _ = writeln!(t, "{:<22} {}", "received", rx.received);
            let _ = writeln!(
                t,
                "{:<22} {} ({:.4} %)",
                "lost",
                rx.lost(self.sent),
                rx.lost(self.sent) as f64 * 100.0 / self.sent.max(1) as f64
            );
            let _ = writeln!(t, "{:<22} {}", "reordered", rx.reordered);
            let _ = writeln!(t, "{:<22} {}", "duplicates", rx.duplicates);
            for p in [50.0, 90.0, 99.0, 99.9, 100.0] {
                let name = if p == 100.0 { "latency max".into() } else { format!("latency p{p}") };
                let _ = writeln!(t, "{name:<22} {}", ns(rx.percentile(p)));
            }
        }
        t
    }

    /// The JSON object.
    pub fn json(&self, seconds: &[Second]) -> serde_json::Value {
        let mut v = serde_json::json!({
            "engine": self.engine,
            "sent": self.sent,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "pps": self.pps(),
            "target_pps": self.target_pps,
            "rate_error_pct": self.rate_error_pct(),
            "sizes": self.sizes.iter().map(|(s, n)| serde_json::json!({"size": s, "frames": n})).collect::<Vec<_>>(),
            "per_second": seconds.iter().map(|s| serde_json::json!({"at": s.at, "tx_pps": s.tx_pps, "rx_pps": s.rx_pps, "p99_ns": s.p99_ns})).collect::<Vec<_>>(),
        });
        if let Some(rx) = self.rx {
            v["received"] = rx.received.into();
            v["lost"] = rx.lost(self.sent).into();
            v["reordered"] = rx.reordered.into();
            v["duplicates"] = rx.duplicates.into();
            v["latency_ns"] = serde_json::json!({
                "p50": rx.percentile(50.0), "p90": rx.percentile(90.0), "p99": rx.percentile(99.0),
                "p99.9": rx.percentile(99.9), "max": rx.percentile(100.0),
            });
        }
        v
    }
}

/// An SVG: throughput (tx and rx pps) over time on the left, the latency distribution
/// (percentile → latency, log-scaled percentiles) on the right.
pub fn svg(seconds: &[Second], rx: Option<&Receiver>) -> String {
    let (w, h, pad) = (420.0, 260.0, 40.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n",
        2.0 * w
    );
    let axis = |s: &mut String, x0: f64, title: &str, xl: &str, yl: &str| {
        let _ = writeln!(
            s,
            "<rect x=\"{x0}\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"white\"/>\
             <text x=\"{}\" y=\"14\" text-anchor=\"middle\" font-weight=\"bold\">{title}</text>\
             <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\
             <line x1=\"{}\" y1=\"{pad}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{xl}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 {} {})\">{yl}</text>",
            x0 + w / 2.0,
            x0 + pad,
            h - pad,
            x0 + w - 10.0,
            h - pad,
            x0 + pad,
            x0 + pad,
            h - pad,
            x0 + w / 2.0,
            h - 8.0,
            x0 + 12.0,
            h / 2.0,
            x0 + 12.0,
            h / 2.0
        );
    };
    axis(&mut s, 0.0, "throughput", "seconds", "packets/s");
    let t_max = seconds.last().map_or(1.0, |x| x.at).max(1.0);
    let p_max = seconds.iter().map(|x| x.tx_pps.max(x.rx_pps)).fold(1.0, f64::max);
    let px = |t: f64| pad + t / t_max * (w - pad - 10.0);
    let py = |v: f64| h - pad - v / p_max * (h - 2.0 * pad);
    for (color, get) in
        [("#1f77b4", (|x: &Second| x.tx_pps) as fn(&Second) -> f64), ("#d62728", |x: &Second| x.rx_pps)]
    {
        let pts: Vec<String> = seconds.iter().map(|x| format!("{:.1},{:.1}", px(x.at), py(get(x)))).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        );
    }
    let _ = writeln!(s, "<text x=\"{}\" y=\"{}\">max {}</text>", pad + 4.0, pad - 4.0, si(p_max, "pps"));
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"28\" fill=\"#1f77b4\">tx</text><text x=\"{}\" y=\"28\" fill=\"#d62728\">rx</text>",
        w - 60.0,
        w - 35.0
    );
    axis(&mut s, w, "latency", "percentile", "latency");
    if let Some(rx) = rx.filter(|r| !r.latency.is_empty()) {
        // x: -log10(1 - p), from p50 to p99.99.
        let ps = [50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99];
        let l_max = rx.percentile(100.0).max(1) as f64;
        let x_of = |p: f64| {
            w + pad
                + (-(1.0 - p / 100.0).log10() - std::f64::consts::LOG10_2) / (4.0 - std::f64::consts::LOG10_2)
                    * (w - pad - 10.0)
        };
        let y_of = |v: f64| h - pad - v / l_max * (h - 2.0 * pad);
        let pts: Vec<String> =
            ps.iter().map(|&p| format!("{:.1},{:.1}", x_of(p), y_of(rx.percentile(p) as f64))).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        );
        for p in [50.0, 90.0, 99.0, 99.9, 99.99] {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">p{p}</text>",
                x_of(p),
                h - pad + 14.0
            );
        }
        let _ =
            writeln!(s, "<text x=\"{}\" y=\"{}\">max {}</text>", w + pad + 4.0, pad - 4.0, ns(l_max as u64));
    } else {
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\">no receive side</text>", w + w / 2.0 - 40.0, h / 2.0);
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_and_the_plot_say_what_was_measured() {
        let mut rx = Receiver::new();
        for s in 0..90 {
            rx.record(s, 0, 10_000 + s * 100);
        }
        let sum = Summary {
            engine: "afxdp",
            sent: 100,
            bytes: 6000,
            seconds: 1.0,
            target_pps: Some(101.0),
            rx: Some(&rx),
            sizes: vec![(60, 100)],
        };
        let t = sum.table();
        assert!(t.contains("lost                   10 (10.0000 %)"), "{t}");
        assert!((sum.rate_error_pct().unwrap() + 0.990).abs() < 0.01);
        let j = sum.json(&[]);
        assert_eq!(j["lost"], 10);
        assert!(j["latency_ns"]["p99"].as_u64().unwrap() >= 18_800);
        let seconds = [Second { at: 1.0, tx_pps: 100.0, tx_bps: 67_200.0, rx_pps: 90.0, p99_ns: 18_900 }];
        let plot = svg(&seconds, Some(&rx));
        assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>") && plot.contains("polyline"));
        assert_eq!(wire_bits(60), 672, "a minimum frame takes 84 bytes of wire time");
    }
}
