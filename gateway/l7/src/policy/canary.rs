//! Canary releases: whether a request goes to a canary Ingress's backend or to the main one,
//! in ingress-nginx's order — the header, then the cookie, then the weight.
//!
//! # What the proxy calls
//! - Per generation, per canary rule: [`CanaryRule::new`] (compiles `canary-by-header-pattern`
//!   with `regex-automata` once).
//! - Per worker, per rule, after each generation: [`CanaryRule::new_cache`] — the regex's
//!   scratch space, so matching takes no lock and allocates nothing per request.
//! - Per request on a path that has a canary: [`CanaryRule::decide`] with the value of the
//!   rule's header ([`CanaryRule::header_name`], e.g. `RequestHead::field`), every `Cookie`
//!   field value of the request, and a uniform random `u64` (the worker's generator).
//!
//! # The rules (ingress-nginx's `balancer.lua` `route_to_alternative_balancer`)
//! 1. `canary-by-header`: with `-by-header-value`, that exact value → canary; with
//!    `-by-header-pattern` (and no value), a value the regex matches anywhere (`ngx.re.match`
//!    is a search, not anchored) → canary; otherwise `always` → canary, `never` → main. Any
//!    other value, or no header, falls through.
//! 2. `canary-by-cookie`: `always` → canary, `never` → main; anything else falls through.
//! 3. `canary-weight` out of `canary-weight-total`: that share of the rest.
//!
//! The votes themselves are `sluice_model::policy::Canary`'s (`header_vote`, `cookie_vote`,
//! `weight_picks`): one source for the rules; this module runs the regex, finds the cookie
//! and draws.
//!
//! # Known limits
//! - The pattern is Rust regex syntax (control checks it with `regex-syntax`), not PCRE:
//!   look-around and back-references are refused there. It is case-sensitive, like
//!   `ngx.re.match` without options.
//! - A header value that is not UTF-8 can only match the pattern.
//!
//! Hot path: [`CanaryRule::decide`] allocates nothing. No `unsafe`.

use regex_automata::meta::{Cache, Regex};
use regex_automata::{Input, util::syntax};
use sluice_model::policy::{Canary, CanaryVote};

use super::cookie;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The canary Ingress's backend.
    Canary,
    /// The main Ingress's backend.
    Main,
}

/// What decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decider {
    /// `canary-by-header` (value, pattern, `always`/`never`).
    Header,
    /// `canary-by-cookie`.
    Cookie,
    /// `canary-weight`.
    Weight,
}

/// A canary rule, its pattern compiled. Made per generation; `Sync`, shared by every worker.
#[derive(Debug, Clone)]
pub struct CanaryRule {
    canary: Canary,
    pattern: Option<Regex>,
}

/// A worker's scratch space for one [`CanaryRule`]'s pattern.
#[derive(Debug, Clone)]
pub struct CanaryCache {
    cache: Option<Cache>,
}

impl CanaryRule {
    /// Compiles the rule's pattern; the error says why it is not a regex Sluice runs (control
    /// checks patterns first, so this is the second line).
    pub fn new(canary: &Canary) -> Result<CanaryRule, String> {
        let pattern = match &canary.header_pattern {
            Some(p) if canary.header_value.is_none() => Some(
                Regex::builder()
                    .configure(super::regex_config())
                    .syntax(syntax::Config::new().utf8(false))
                    .build(p)
                    .map_err(|e| format!("canary-by-header-pattern {p:?}: {e}"))?,
            ),
            _ => None,
        };
        Ok(CanaryRule { canary: canary.clone(), pattern })
    }

    /// A worker's cache for the pattern (allocates; once per worker and generation; with
    /// `policy::regex_config`, all its scratch space is there once it has searched once, which
    /// it does here).
    pub fn new_cache(&self) -> CanaryCache {
        CanaryCache {
            cache: self.pattern.as_ref().map(|re| {
                let mut cache = re.create_cache();
                let _ = re.search_half_with(&mut cache, &Input::new("x"));
                cache
            }),
        }
    }

    /// The header the rule reads, if any.
    pub fn header_name(&self) -> Option<&str> {
        self.canary.header.as_deref()
    }

    /// The cookie the rule reads, if any.
    pub fn cookie_name(&self) -> Option<&str> {
        self.canary.cookie.as_deref()
    }

    /// Decides one request: `header` is the value of [`CanaryRule::header_name`]'s field
    /// (`None`: absent, or the rule has no header), `cookie_fields` the request's `Cookie`
    /// field values, `random` a uniform draw. `cache` must come from this rule's
    /// [`CanaryRule::new_cache`].
    pub fn decide<'a>(
        &self,
        cache: &mut CanaryCache,
        header: Option<&[u8]>,
        cookie_fields: impl IntoIterator<Item = &'a [u8]>,
        random: u64,
    ) -> (Pick, Decider) {
        if let Some(value) = header {
            let matches = match (&self.pattern, &mut cache.cache) {
                (Some(re), Some(c)) => re.search_half_with(c, &Input::new(value).earliest(true)).is_some(),
                _ => false,
            };
            // Not UTF-8: U+FFFD, which no value the annotations allow equals (they are ASCII).
            let text = std::str::from_utf8(value).unwrap_or("\u{fffd}");
            match self.canary.header_vote(Some(text), matches) {
                CanaryVote::Canary => return (Pick::Canary, Decider::Header),
                CanaryVote::Main => return (Pick::Main, Decider::Header),
                CanaryVote::Abstain => {}
            }
        }
        if let Some(name) = &self.canary.cookie {
            let value = cookie::find(cookie_fields, name).and_then(|v| std::str::from_utf8(v).ok());
            match self.canary.cookie_vote(value) {
                CanaryVote::Canary => return (Pick::Canary, Decider::Cookie),
                CanaryVote::Main => return (Pick::Main, Decider::Cookie),
                CanaryVote::Abstain => {}
            }
        }
        let pick = if self.canary.weight_picks(draw(random, self.canary.weight_total)) {
            Pick::Canary
        } else {
            Pick::Main
        };
        (pick, Decider::Weight)
    }
}

/// A uniform draw in `0..total` from a uniform `u64` (its high 32 bits, multiplied: no modulo
/// bias worth the name). `total` 0 draws `u32::MAX`, which no weight picks.
pub fn draw(random: u64, total: u32) -> u32 {
    if total == 0 {
        return u32::MAX;
    }
    (((random >> 32) * u64::from(total)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        header: Option<&str>,
        value: Option<&str>,
        pattern: Option<&str>,
        cookie: Option<&str>,
        weight: u32,
    ) -> CanaryRule {
        CanaryRule::new(&Canary {
            header: header.map(Into::into),
            header_value: value.map(Into::into),
            header_pattern: pattern.map(Into::into),
            cookie: cookie.map(Into::into),
            weight,
            weight_total: 100,
        })
        .unwrap()
    }

    const LOW: u64 = 0; // draws 0: any weight over 0 picks the canary
    const HIGH: u64 = u64::MAX; // draws 99: only weight 100 does

    #[test]
    fn ingress_nginx_precedence() {
        let by_header = rule(Some("X-Canary"), None, None, Some("canary"), 0);
        let by_value = rule(Some("X-Region"), Some("us-east"), None, Some("canary"), 100);
        let by_pattern = rule(Some("X-User"), None, Some("^(alice|bob)$|admin"), None, 0);
        let both = rule(Some("X-User"), Some("carol"), Some("alice"), None, 0);
        let weighted = rule(None, None, None, None, 30);
        type Row<'r> = (
            &'static str,
            &'r CanaryRule,
            Option<&'static [u8]>,
            &'static [&'static [u8]],
            u64,
            (Pick, Decider),
        );
        let rows: &[Row<'_>] = &[
            ("always", &by_header, Some(b"always"), &[], HIGH, (Pick::Canary, Decider::Header)),
            (
                "never beats the cookie",
                &by_header,
                Some(b"never"),
                &[b"canary=always"],
                LOW,
                (Pick::Main, Decider::Header),
            ),
            (
                "other value: the cookie",
                &by_header,
                Some(b"maybe"),
                &[b"canary=always"],
                HIGH,
                (Pick::Canary, Decider::Cookie),
            ),
            (
                "no header: the cookie",
                &by_header,
                None,
                &[b"a=b; canary=never"],
                LOW,
                (Pick::Main, Decider::Cookie),
            ),
            (
                "cookie in a second field",
                &by_header,
                None,
                &[b"a=b", b"canary=always"],
                HIGH,
                (Pick::Canary, Decider::Cookie),
            ),
            (
                "cookie other value: weight 0",
                &by_header,
                None,
                &[b"canary=yes"],
                LOW,
                (Pick::Main, Decider::Weight),
            ),
            (
                "value replaces always",
                &by_value,
                Some(b"always"),
                &[b"canary=never"],
                HIGH,
                (Pick::Main, Decider::Cookie),
            ),
            (
                "the value",
                &by_value,
                Some(b"us-east"),
                &[b"canary=never"],
                HIGH,
                (Pick::Canary, Decider::Header),
            ),
            (
                "value is case-sensitive",
                &by_value,
                Some(b"US-EAST"),
                &[],
                LOW,
                (Pick::Canary, Decider::Weight),
            ),
            ("weight 100 of 100", &by_value, None, &[], HIGH, (Pick::Canary, Decider::Weight)),
            ("pattern", &by_pattern, Some(b"bob"), &[], HIGH, (Pick::Canary, Decider::Header)),
            (
                "pattern is a search",
                &by_pattern,
                Some(b"superadmin!"),
                &[],
                HIGH,
                (Pick::Canary, Decider::Header),
            ),
            ("pattern anchors hold", &by_pattern, Some(b"bobby"), &[], LOW, (Pick::Main, Decider::Weight)),
            (
                "pattern: never is not special",
                &by_pattern,
                Some(b"never"),
                &[],
                LOW,
                (Pick::Main, Decider::Weight),
            ),
            (
                "pattern: always neither",
                &by_pattern,
                Some(b"always"),
                &[],
                LOW,
                (Pick::Main, Decider::Weight),
            ),
            ("pattern on bytes", &by_pattern, Some(b"admin\xff"), &[], HIGH, (Pick::Canary, Decider::Header)),
            ("value wins over pattern", &both, Some(b"alice"), &[], LOW, (Pick::Main, Decider::Weight)),
            ("value wins over pattern 2", &both, Some(b"carol"), &[], HIGH, (Pick::Canary, Decider::Header)),
            (
                "weight low draw",
                &weighted,
                Some(b"always"),
                &[b"canary=always"],
                LOW,
                (Pick::Canary, Decider::Weight),
            ),
            ("weight high draw", &weighted, None, &[], HIGH, (Pick::Main, Decider::Weight)),
        ];
        for (what, r, header, cookies, random, want) in rows {
            let mut cache = r.new_cache();
            assert_eq!(r.decide(&mut cache, *header, cookies.iter().copied(), *random), *want, "{what}");
        }
    }

    #[test]
    fn weights_are_shares() {
        for (weight, total) in [(0, 100), (1, 100), (30, 100), (100, 100), (7, 1000), (5, 5)] {
            let r = CanaryRule::new(&Canary { weight, weight_total: total, ..Canary::default() }).unwrap();
            let mut cache = r.new_cache();
            // Every draw of an even spread of u64s: exactly weight / total of them.
            let n = 100_000u64;
            let canary = (0..n)
                .filter(|i| {
                    r.decide(&mut cache, None, [], (i * (u64::MAX / n)).wrapping_add(1)).0 == Pick::Canary
                })
                .count() as u64;
            let want = n * u64::from(weight) / u64::from(total);
            assert!(canary.abs_diff(want) <= n / 1000, "{weight}/{total}: {canary} of {n}, want {want}");
        }
        assert_eq!(draw(u64::MAX, 100), 99);
        assert_eq!(draw(0, 100), 0);
        assert_eq!(draw(12345, 0), u32::MAX);
    }

    #[test]
    fn bad_patterns_are_errors() {
        let c =
            Canary { header: Some("x".into()), header_pattern: Some("(?<=a)b".into()), ..Canary::default() };
        assert!(CanaryRule::new(&c).is_err());
        // With a value, the pattern is not used, so not compiled either.
        let c = Canary { header_value: Some("v".into()), ..c };
        assert!(CanaryRule::new(&c).is_ok());
    }
}
