//! W3C trace context: the `traceparent` a producer sends with a publish is kept with the event,
//! and every delivery of it carries the same trace id under a span id of its own, so that a
//! subscriber's logs join the producer's. An event published without one starts a trace.

use std::cell::RefCell;
use std::fmt;

use super::secret::random_bytes;

/// Random bytes drawn from the OS a page at a time: a trace id per event and a span id per
/// delivery, each a `getrandom` call, were about 1 % of the server's CPU under the benchmark.
const POOL: usize = 4096;

thread_local! {
    static RANDOM: RefCell<([u8; POOL], usize)> = const { RefCell::new(([0; POOL], POOL)) };
}

/// `N` random bytes from this thread's pool, refilled from the OS when it runs out.
fn random<const N: usize>() -> [u8; N] {
    RANDOM.with_borrow_mut(|(pool, used)| {
        if *used + N > POOL {
            *pool = random_bytes::<POOL>();
            *used = 0;
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&pool[*used..*used + N]);
        *used += N;
        out
    })
}

/// A `traceparent`: version 00, a trace id, the id of the span that made the request, and the
/// trace flags (bit 0: sampled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// Reads a `traceparent` header as W3C Trace Context level 1 says: lowercase hex fields,
    /// neither id all zeros, version `ff` invalid, and a later version read by its first four
    /// fields. `None` for anything else (a new trace is then started, as the spec asks).
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let bytes = header.as_bytes();
        if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
            return None;
        }
        let (version, trace_id, parent_id, flags) =
            (header.get(0..2)?, header.get(3..35)?, header.get(36..52)?, header.get(53..55)?);
        if [2, 35, 52].iter().any(|&i| bytes[i] != b'-') {
            return None;
        }
        let version = lower_hex::<1>(version)?[0];
        if version == 0xff || (version == 0 && bytes.len() != 55) {
            return None;
        }
        let trace_id = lower_hex::<16>(trace_id).filter(|id| id.iter().any(|b| *b != 0))?;
        let parent_id = lower_hex::<8>(parent_id).filter(|id| id.iter().any(|b| *b != 0))?;
        let flags = lower_hex::<1>(flags)?[0];
        Some(Self { trace_id, parent_id, flags })
    }

    /// A new trace, sampled.
    pub fn start() -> Self {
        let mut trace_id = random::<16>();
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        Self { trace_id, parent_id: span_id(), flags: 1 }
    }

    /// The same trace, from a new span of hookgate's (a delivery, or a chained publish).
    #[must_use]
    pub fn child(&self) -> Self {
        Self { parent_id: span_id(), ..*self }
    }

    pub fn trace_id(&self) -> String {
        hex::encode(self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{:02x}", hex::encode(self.trace_id), hex::encode(self.parent_id), self.flags)
    }
}

fn span_id() -> [u8; 8] {
    let mut id = random::<8>();
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

fn lower_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specs_example_round_trips() {
        let parsed = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(parsed.to_string(), EXAMPLE);
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_under_a_new_span() {
        let parent = TraceParent::parse(EXAMPLE).unwrap();
        let child = parent.child();
        let text = child.to_string();
        assert!(text.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && text.ends_with("-01"), "{text}");
        assert_ne!(child, parent);
        assert_eq!(TraceParent::parse(&text), Some(child));
    }

    #[test]
    fn invalid_headers_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        assert_eq!(TraceParent::parse(later).unwrap().to_string(), EXAMPLE);
    }

    #[test]
    fn ids_drawn_across_refills_of_the_pool_do_not_repeat() {
        let started = TraceParent::start();
        let spans: std::collections::HashSet<String> =
            (0..2 * POOL).map(|_| started.child().to_string()).collect();
        assert_eq!(spans.len(), 2 * POOL);
        let traces: std::collections::HashSet<String> =
            (0..POOL).map(|_| TraceParent::start().trace_id()).collect();
        assert_eq!(traces.len(), POOL);
    }

    #[test]
    fn a_new_trace_is_valid_and_sampled() {
        let started = TraceParent::start();
        assert_eq!(TraceParent::parse(&started.to_string()), Some(started));
        assert!(started.to_string().ends_with("-01"));
    }
}
