//! W3C trace context (`traceparent`) in and out: what an Erlang caller hands a request,
//! and what an `erlang.call` hands the Erlang function it runs.
//!
//! Format: `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, lowercase. A value that
//! does not parse (wrong version, length, case or characters, or all-zero ids) is
//! ignored: the request starts a trace of its own rather than failing.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;

/// The remote parent a `traceparent` names, or `None` for a malformed one.
pub fn parse(traceparent: &[u8]) -> Option<Context> {
    let text = std::str::from_utf8(traceparent).ok()?;
    let mut parts = text.split('-');
    let (version, trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version != "00" {
        return None;
    }
    let trace_id = TraceId::from_bytes(hex_bytes::<16>(trace_id)?);
    let span_id = SpanId::from_bytes(hex_bytes::<8>(span_id)?);
    let [flags] = hex_bytes::<1>(flags)?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let remote = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, TraceState::default());
    Some(Context::new().with_remote_span_context(remote))
}

/// The `traceparent` of the span current in `cx`, if it has a valid one.
pub fn format(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    Some(format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// Exactly `2 * N` lowercase hex digits (W3C forbids upper case) as `N` bytes.
fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// A trace id as `get_traces/1` takes it (32 hex digits; upper case accepted there, as
/// users paste ids from tracing UIs).
pub fn parse_trace_id(text: &[u8]) -> Option<TraceId> {
    let lower = std::str::from_utf8(text).ok()?.to_ascii_lowercase();
    hex_bytes::<16>(&lower).map(TraceId::from_bytes)
}
