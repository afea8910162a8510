//! The little SDP reading the node does itself, before handing an offer to the WebRTC stack:
//! size limit, the m-lines (kind, mid, port, direction) in order, and the rewriting of host
//! candidates to the announced (replaced) addresses. Pure functions, tested here.

/// Offers larger than this are refused.
pub const MAX_SDP_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MLine {
    /// `audio`, `video`, `application`, ...
    pub kind: String,
    pub mid: Option<String>,
    pub port: u16,
    /// `sendrecv` (default), `sendonly`, `recvonly`, `inactive`.
    pub direction: String,
}

impl MLine {
    /// The m-line is closed (port 0) or carries no media.
    pub fn is_closed(&self) -> bool {
        self.port == 0 || self.direction == "inactive"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("the SDP is {0} bytes, above the limit of {MAX_SDP_BYTES}")]
    TooLarge(usize),
    #[error("the SDP does not start with v=0")]
    NotSdp,
    #[error("bad m-line {0:?}")]
    BadMLine(String),
    #[error("m-line {0} has no a=mid")]
    NoMid(usize),
    #[error("mid {0:?} appears twice")]
    DuplicateMid(String),
}

/// The m-lines of `sdp`, in order. Every m-line must carry a unique mid (the client is a
/// unified-plan browser SDK).
pub fn m_lines(sdp: &str) -> Result<Vec<MLine>, SdpError> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge(sdp.len()));
    }
    if !sdp.trim_start().starts_with("v=0") {
        return Err(SdpError::NotSdp);
    }
    let mut lines: Vec<MLine> = Vec::new();
    for raw in sdp.lines() {
        let line = raw.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("m=") {
            let mut parts = rest.split(' ');
            let kind = parts.next().unwrap_or_default().to_string();
            let port = parts
                .next()
                .and_then(|p| p.split('/').next())
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| SdpError::BadMLine(line.chars().take(80).collect()))?;
            if kind.is_empty() {
                return Err(SdpError::BadMLine(line.chars().take(80).collect()));
            }
            lines.push(MLine { kind, mid: None, port, direction: "sendrecv".into() });
        } else if let Some(current) = lines.last_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                current.mid = Some(mid.trim().to_string());
            } else if let Some(dir) = line.strip_prefix("a=") {
                if matches!(dir, "sendrecv" | "sendonly" | "recvonly" | "inactive") {
                    current.direction = dir.to_string();
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        let mid = line.mid.as_ref().ok_or(SdpError::NoMid(i))?;
        if !seen.insert(mid.clone()) {
            return Err(SdpError::DuplicateMid(mid.clone()));
        }
    }
    Ok(lines)
}

/// Replaces, in every candidate line, the connection address `from` with `to` (the public
/// address announced for an interface behind 1:1 NAT).
pub fn replace_candidate_address(sdp: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("a=candidate:") {
            let fields: Vec<&str> = line.trim_end().split(' ').collect();
            if fields.len() > 5 && fields[4] == from {
                let mut fields: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
                fields[4] = to.to_string();
                out.push_str(&fields.join(" "));
                out.push_str("\r\n");
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

/// A client candidate as OWT's JS SDK sends it (`a=candidate:...`) or bare (`candidate:...`):
/// the bare form. Empty means end of candidates.
pub fn bare_candidate(candidate: &str) -> Result<String, String> {
    let c = candidate.trim();
    let c = c.strip_prefix("a=").unwrap_or(c);
    if c.len() > 1024 {
        return Err("candidate longer than 1024 bytes".into());
    }
    if !c.is_empty() && !c.starts_with("candidate:") {
        return Err(format!("not an ICE candidate: {:?}", c.chars().take(60).collect::<String>()));
    }
    Ok(c.to_string())
}

/// Repairs the payload lists of an answer from the WebRTC stack. On re-offers that add a
/// second m-line of a kind, webrtc 0.21 may list a payload type twice and keep RTX payloads
/// whose `apt` codec is not in that m-line (taken from another m-line's negotiation); Chrome
/// refuses such an answer ("Failed to set remote ... description send parameters"). Per
/// m-line: payload types are listed once, RTX payloads need their codec present, and every
/// rtpmap/fmtp/rtcp-fb line names a listed payload type and appears once.
pub fn tidy_answer(sdp: &str) -> String {
    map_media_sections(sdp, tidy_media_section)
}

/// `sdp` with every media section (an `m=` line and the lines up to the next one) replaced
/// by what `section` makes of it; the session part is kept as it is.
fn map_media_sections(sdp: &str, mut section_fn: impl FnMut(&[&str]) -> Vec<String>) -> String {
    let newline = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out: Vec<String> = Vec::new();
    let mut section: Vec<&str> = Vec::new();
    for line in sdp.split(newline) {
        if line.starts_with("m=") && !section.is_empty() {
            out.extend(section_fn(&section));
            section.clear();
        }
        if section.is_empty() && !line.starts_with("m=") {
            out.push(line.to_string());
        } else {
            section.push(line);
        }
    }
    if !section.is_empty() {
        out.extend(section_fn(&section));
    }
    out.join(newline)
}

fn payload_of(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("a=rtpmap:")
        .or_else(|| line.strip_prefix("a=fmtp:"))
        .or_else(|| line.strip_prefix("a=rtcp-fb:"))?;
    rest.split([' ', '/']).next()
}

fn tidy_media_section(lines: &[&str]) -> Vec<String> {
    let mut fields: Vec<&str> = lines[0].split(' ').collect();
    if fields.len() < 4 {
        return lines.iter().map(|l| l.to_string()).collect();
    }
    let mut payloads: Vec<&str> = Vec::new();
    for payload in &fields[3..] {
        if !payloads.contains(payload) {
            payloads.push(payload);
        }
    }
    // RTX (or any fmtp apt=) payloads whose associated codec is missing go.
    let orphans: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("a=fmtp:"))
        .filter_map(|rest| {
            let (payload, params) = rest.split_once(' ')?;
            let apt = associated_payload_type(params)?;
            (!payloads.contains(&apt)).then_some(payload)
        })
        .collect();
    payloads.retain(|p| !orphans.contains(p));
    fields.truncate(3);
    fields.extend(payloads.iter().copied());
    let mut out = vec![fields.join(" ")];
    for line in &lines[1..] {
        if let Some(payload) = payload_of(line) {
            if payload != "*" && !payloads.contains(&payload) {
                continue;
            }
            if out.iter().any(|kept| kept == line) {
                continue;
            }
        }
        out.push(line.to_string());
    }
    out
}

/// The `apt` parameter of an fmtp line's parameters (RFC 4588 §8.1): the payload type an RTX
/// format repairs.
pub fn associated_payload_type(fmtp_params: &str) -> Option<&str> {
    fmtp_params.split(';').find_map(|p| p.trim().strip_prefix("apt="))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=inactive\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=recvonly\r\n";

    #[test]
    fn reads_m_lines() {
        let lines = m_lines(OFFER).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            MLine { kind: "audio".into(), mid: Some("0".into()), port: 9, direction: "sendonly".into() }
        );
        assert!(lines[1].is_closed());
        assert_eq!(lines[2].direction, "recvonly");
    }

    #[test]
    fn refuses_bad_sdp() {
        assert_eq!(m_lines("hello"), Err(SdpError::NotSdp));
        assert!(matches!(m_lines(&"v=0\r\n".repeat(60_000)), Err(SdpError::TooLarge(_))));
        assert!(matches!(m_lines("v=0\r\nm=audio x RTP\r\n"), Err(SdpError::BadMLine(_))));
        assert_eq!(m_lines("v=0\r\nm=audio 9 RTP 0\r\n"), Err(SdpError::NoMid(0)));
        assert_eq!(
            m_lines("v=0\r\nm=audio 9 RTP 0\r\na=mid:a\r\nm=video 9 RTP 0\r\na=mid:a\r\n"),
            Err(SdpError::DuplicateMid("a".into()))
        );
    }

    #[test]
    fn candidates() {
        assert_eq!(
            bare_candidate("a=candidate:1 1 udp 2 127.0.0.1 5000 typ host").unwrap(),
            "candidate:1 1 udp 2 127.0.0.1 5000 typ host"
        );
        assert_eq!(bare_candidate("candidate:1 1 udp 2 ::1 5 typ host").unwrap(), "candidate:1 1 udp 2 ::1 5 typ host");
        assert_eq!(bare_candidate("").unwrap(), "");
        assert!(bare_candidate("a=foo").is_err());
        let sdp = "a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\nc=IN IP4 0.0.0.0\r\n";
        let out = replace_candidate_address(sdp, "10.0.0.5", "203.0.113.7");
        assert_eq!(out, "a=candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host\r\nc=IN IP4 0.0.0.0\r\n");
    }

    #[test]
    fn answers_are_tidied() {
        let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 98 98 97 99 36\r\na=mid:3\r\na=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack\r\na=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\na=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\n\
a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\na=rtpmap:36 rtx/90000\r\n\
a=fmtp:36 apt=35\r\na=recvonly\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:4\r\na=rtpmap:111 opus/48000/2\r\n";
        let tidy = tidy_answer(answer);
        assert!(tidy.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 98 97 99\r\n"), "{tidy}");
        assert_eq!(tidy.matches("a=rtpmap:98 VP9/90000").count(), 1, "{tidy}");
        assert!(!tidy.contains("a=rtpmap:36") && !tidy.contains("a=fmtp:36"), "{tidy}");
        assert!(tidy.contains("a=rtcp-fb:96 nack\r\n") && tidy.contains("a=recvonly\r\nm=audio"), "{tidy}");
        assert!(tidy.ends_with("a=rtpmap:111 opus/48000/2\r\n"), "{tidy}");
        let clean = "v=0\r\nm=audio 9 RTP 111 0\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n";
        assert_eq!(tidy_answer(clean), clean);
    }
}

/// The OWT name of an rtpmap encoding (`VP8/90000` -> `vp8`, `opus/48000/2` -> `opus`).
fn codec_of_rtpmap(encoding: &str) -> String {
    encoding.split('/').next().unwrap_or_default().to_ascii_lowercase()
}

/// Keeps, in the m-lines named in `allowed` (mid -> OWT codec names, in the room's mediaIn),
/// only the payload types of those codecs and their RTX, so the stack answers a codec the
/// room accepts even when the client prefers another. An m-line that would be left with no
/// codec is kept as it is (the publication then fails with "format unacceptable").
pub fn restrict_offer(sdp: &str, allowed: &std::collections::HashMap<String, Vec<String>>) -> String {
    map_media_sections(sdp, |section| {
        let mid = section.iter().find_map(|l| l.strip_prefix("a=mid:")).map(str::trim);
        match mid.and_then(|m| allowed.get(m)).filter(|codecs| !codecs.is_empty()) {
            Some(codecs) => restrict_section(section, codecs),
            None => section.iter().map(|l| l.to_string()).collect(),
        }
    })
}

fn restrict_section(lines: &[&str], codecs: &[String]) -> Vec<String> {
    let fields: Vec<&str> = lines[0].split(' ').collect();
    if fields.len() < 4 {
        return lines.iter().map(|l| l.to_string()).collect();
    }
    let encoding_of = |pt: &str| {
        lines.iter().find_map(|l| {
            let rest = l.strip_prefix("a=rtpmap:")?;
            let (p, encoding) = rest.split_once(' ')?;
            (p == pt).then(|| codec_of_rtpmap(encoding))
        })
    };
    let apt_of = |pt: &str| {
        lines.iter().find_map(|l| {
            let rest = l.strip_prefix("a=fmtp:")?;
            let (p, params) = rest.split_once(' ')?;
            (p == pt).then(|| associated_payload_type(params).map(str::to_string))?
        })
    };
    let kept_codecs: Vec<&str> = fields[3..]
        .iter()
        .copied()
        .filter(|pt| encoding_of(pt).is_some_and(|c| codecs.iter().any(|a| a.eq_ignore_ascii_case(&c))))
        .collect();
    if kept_codecs.is_empty() {
        return lines.iter().map(|l| l.to_string()).collect();
    }
    let kept: Vec<&str> = fields[3..]
        .iter()
        .copied()
        .filter(|pt| {
            kept_codecs.contains(pt)
                || (encoding_of(pt).as_deref() == Some("rtx")
                    && apt_of(pt).is_some_and(|apt| kept_codecs.contains(&apt.as_str())))
        })
        .collect();
    let mut out = vec![format!("{} {}", fields[..3].join(" "), kept.join(" "))];
    for line in &lines[1..] {
        if payload_of(line).is_some_and(|pt| !kept.contains(&pt)) {
            continue;
        }
        out.push(line.to_string());
    }
    out
}

#[cfg(test)]
mod restrict_tests {
    use super::*;
    use std::collections::HashMap;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 45 96 97 98 99\r\na=mid:1\r\na=sendonly\r\n\
a=rtpmap:45 AV1/90000\r\na=rtcp-fb:45 nack\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\n\
a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\n\
a=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn only_allowed_codecs_and_their_rtx_stay_in_publish_m_lines() {
        let allowed = HashMap::from([("1".to_string(), vec!["vp8".to_string(), "h264".to_string()])]);
        let restricted = restrict_offer(OFFER, &allowed);
        assert!(restricted.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n"), "{restricted}");
        assert!(!restricted.contains("AV1") && !restricted.contains("VP9") && !restricted.contains("apt=98"));
        assert!(restricted.contains("a=rtcp-fb:96 nack") && !restricted.contains("a=rtcp-fb:45"));
        assert!(restricted.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n"), "other m-lines unchanged");
    }

    #[test]
    fn nothing_allowed_or_no_rule_leaves_the_offer_alone() {
        let none = HashMap::from([("1".to_string(), vec!["h265".to_string()])]);
        assert_eq!(restrict_offer(OFFER, &none), OFFER);
        assert_eq!(restrict_offer(OFFER, &HashMap::new()), OFFER);
        assert_eq!(restrict_offer("garbage", &none), "garbage");
    }
}

/// The simulcast layers a client sends, per mid: the `a=rid:<id> send` lines of each m-line,
/// in order (empty for m-lines without simulcast).
pub fn send_rids(sdp: &str) -> std::collections::HashMap<String, Vec<String>> {
    let mut rids = std::collections::HashMap::new();
    let mut mid: Option<String> = None;
    let mut layers: Vec<String> = Vec::new();
    let mut flush = |mid: &mut Option<String>, layers: &mut Vec<String>| {
        if let Some(mid) = mid.take() {
            if !layers.is_empty() {
                rids.insert(mid, std::mem::take(layers));
            }
        }
        layers.clear();
    };
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("m=") {
            flush(&mut mid, &mut layers);
        } else if let Some(value) = line.strip_prefix("a=mid:") {
            mid = Some(value.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("a=rid:") {
            let mut parts = rest.split_whitespace();
            if let (Some(id), Some("send")) = (parts.next(), parts.next()) {
                let valid = !id.is_empty() && id.len() <= 16 && id.chars().all(|c| c.is_ascii_alphanumeric());
                if valid && layers.len() < 4 && !layers.iter().any(|l| l == id) {
                    layers.push(id.to_string());
                }
            }
        }
    }
    flush(&mut mid, &mut layers);
    rids
}

#[cfg(test)]
mod rid_tests {
    use super::*;

    #[test]
    fn send_rids_per_mid() {
        let sdp = "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:1\r\na=rid:q send\r\na=rid:h send\r\n\
a=rid:f send\r\na=rid:r recv\r\na=rid:q send\r\na=rid:b@d send\r\na=simulcast:send q;h;f\r\nm=video 9 X 96\r\na=mid:2\r\n";
        let rids = send_rids(sdp);
        assert_eq!(rids.get("1").map(Vec::as_slice), Some(&["q".to_string(), "h".to_string(), "f".to_string()][..]));
        assert!(!rids.contains_key("0") && !rids.contains_key("2"));
        assert!(send_rids("garbage").is_empty());
    }
}
