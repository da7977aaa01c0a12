//! The bottom layer: files written atomically and read with limits, output probes with
//! their own error type, and SHA-256 checksums. Imports nothing of this crate.

pub mod files;
pub mod sha256;

/// A duration in seconds as the tools print it: tenths of a second from one second on
/// (`1.3 s`), whole milliseconds below (`40 ms`: an `mlp` epoch on a few hundred images
/// takes that, which tenths would print as `0.0 s`), `<1 ms` below a millisecond.
pub fn seconds_text(seconds: f64) -> String {
    let ms = (seconds * 1000.0).round();
    if ms >= 1000.0 || ms.is_nan() {
        format!("{seconds:.1} s")
    } else if ms >= 1.0 {
        format!("{ms:.0} ms")
    } else {
        "<1 ms".to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_print_in_tenths_and_sub_second_times_in_milliseconds() {
        let text = super::seconds_text;
        assert_eq!(text(113.24), "113.2 s");
        assert_eq!(text(1.0), "1.0 s");
        assert_eq!(text(0.9996), "1.0 s");
        assert_eq!(text(0.04), "40 ms");
        assert_eq!(text(0.0123), "12 ms");
        assert_eq!(text(0.0004), "<1 ms");
        assert_eq!(text(0.0), "<1 ms");
    }
}
