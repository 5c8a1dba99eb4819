//! The CRI container log format, which containerd's CRI plugin writes to a container's log path
//! and the kubelet reads back (`kubectl logs`): one record per line,
//! `<RFC 3339 timestamp with nanoseconds> <stdout|stderr> <F|P> <content>`, where `P` marks a
//! partial line that the next record of the same stream continues (the CRI logging KEP,
//! "CRI container log format").

/// Which output stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
}

/// One record of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When the runtime read the line, as written (RFC 3339 with fractional seconds).
    pub timestamp: String,
    /// The stream it came from.
    pub stream: Stream,
    /// `false` for `P`: the line was split (too long), and continues in the next record.
    pub full: bool,
    /// The line without its newline.
    pub content: String,
}

/// Parses a whole CRI log file. Every line must be a well-formed record; the file must end in
/// a newline (the runtime writes whole records).
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    let Some(body) = text.strip_suffix('\n') else {
        return if text.is_empty() { Ok(Vec::new()) } else { Err(format!("log does not end in a newline: {text:?}")) };
    };
    body.split('\n').map(parse_record).collect()
}

fn parse_record(line: &str) -> Result<Record, String> {
    let mut fields = line.splitn(4, ' ');
    let (Some(timestamp), Some(stream), Some(tag), Some(content)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(format!("not 4 space-separated fields: {line:?}"));
    };
    if !is_rfc3339_with_fraction(timestamp) {
        return Err(format!("bad timestamp {timestamp:?} in {line:?}"));
    }
    let stream = match stream {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        other => return Err(format!("bad stream {other:?} in {line:?}")),
    };
    let full = match tag {
        "F" => true,
        "P" => false,
        other => return Err(format!("bad tag {other:?} in {line:?}")),
    };
    Ok(Record { timestamp: timestamp.to_string(), stream, full, content: content.to_string() })
}

/// `YYYY-MM-DDTHH:MM:SS.fraction` then `Z` or `±HH:MM`: Go's `time.RFC3339Nano` (which drops
/// trailing zeros of the fraction, and the dot with them when the fraction is zero).
fn is_rfc3339_with_fraction(timestamp: &str) -> bool {
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let shape = |text: &str, pattern: &str| {
        text.len() == pattern.len()
            && text.bytes().zip(pattern.bytes()).all(|(byte, want)| match want {
                b'9' => byte.is_ascii_digit(),
                _ => byte == want,
            })
    };
    if timestamp.len() < 20 || !timestamp.is_char_boundary(19) {
        return false;
    }
    let (date_time, rest) = timestamp.split_at(19);
    if !shape(date_time, "9999-99-99T99:99:99") {
        return false;
    }
    let (fraction, zone) = match rest.find(['Z', '+', '-']) {
        Some(at) => rest.split_at(at),
        None => return false,
    };
    let fraction_ok =
        fraction.is_empty() || fraction.strip_prefix('.').is_some_and(|nanos| digits(nanos) && nanos.len() <= 9);
    let zone_ok = zone == "Z" || (zone.len() == 6 && shape(&zone[1..], "99:99"));
    fraction_ok && zone_ok
}

/// The lines of `stream`, partial records joined to the lines they belong to.
pub fn lines_of(records: &[Record], stream: Stream) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    for record in records.iter().filter(|record| record.stream == stream) {
        pending.push_str(&record.content);
        if record.full {
            lines.push(std::mem::take(&mut pending));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_both_streams_are_parsed() {
        let text = "2026-01-02T03:04:05.123456789Z stdout F hello world\n\
                    2026-01-02T03:04:05.2+01:00 stderr F oops\n\
                    2026-01-02T03:04:06Z stdout P par\n\
                    2026-01-02T03:04:06.5Z stdout F tial\n\
                    2026-01-02T03:04:07.000000001-05:30 stdout F \n";
        let records = parse(text).unwrap();
        assert_eq!(records.len(), 5);
        assert_eq!(
            records[0],
            Record {
                timestamp: "2026-01-02T03:04:05.123456789Z".into(),
                stream: Stream::Stdout,
                full: true,
                content: "hello world".into()
            }
        );
        assert_eq!(lines_of(&records, Stream::Stdout), ["hello world", "partial", ""]);
        assert_eq!(lines_of(&records, Stream::Stderr), ["oops"]);
        assert_eq!(parse("").unwrap(), []);
    }

    #[test]
    fn malformed_records_are_refused() {
        struct Case {
            name: &'static str,
            text: &'static str,
        }
        let cases = [
            Case { name: "no trailing newline", text: "2026-01-02T03:04:05.1Z stdout F x" },
            Case { name: "raw output", text: "hello\n" },
            Case { name: "three fields", text: "2026-01-02T03:04:05.1Z stdout F\n" },
            Case { name: "unknown stream", text: "2026-01-02T03:04:05.1Z stdin F x\n" },
            Case { name: "unknown tag", text: "2026-01-02T03:04:05.1Z stdout X x\n" },
            Case { name: "no zone", text: "2026-01-02T03:04:05.1 stdout F x\n" },
            Case { name: "date only", text: "2026-01-02 stdout F x\n" },
            Case { name: "ten fraction digits", text: "2026-01-02T03:04:05.1234567890Z stdout F x\n" },
            Case { name: "empty fraction", text: "2026-01-02T03:04:05.Z stdout F x\n" },
            Case { name: "bad offset", text: "2026-01-02T03:04:05.1+0100 stdout F x\n" },
            Case { name: "blank line", text: "2026-01-02T03:04:05.1Z stdout F x\n\n" },
        ];
        for case in cases {
            assert!(parse(case.text).is_err(), "case {:?} should be refused", case.name);
        }
    }
}
