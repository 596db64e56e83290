//! Offline validators applied to a rule's regex match: checksums and decodings that tell a real
//! token from one that only has its shape.

use base64::Engine as _;

/// The base62 alphabet of GitHub's token checksums (digits, then upper, then lower case).
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 6-character base62 form of a CRC32, left-padded with `0` (GitHub's checksum suffix).
pub(crate) fn base62_crc(crc: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    let mut v = crc;
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    out
}

/// The checksum suffix GitHub appends to a token's random part.
pub(crate) fn github_checksum(random: &[u8]) -> [u8; 6] {
    base62_crc(crc32fast::hash(random))
}

/// Whether a GitHub `gh?_` token carries a valid checksum: the last 6 base62 characters are the
/// CRC32 of the 30 random characters before them (GitHub's 2021 token format). Only the 36-byte
/// body of the classic formats is checked; longer bodies (the 76-character `ghr_` form, whose
/// layout GitHub does not document) are accepted as they are.
pub(crate) fn github_crc32(token: &[u8]) -> bool {
    let Some(us) = token.iter().position(|&b| b == b'_') else {
        return false;
    };
    let body = &token[us + 1..];
    if !body.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    if body.len() != 36 {
        return body.len() > 36;
    }
    let (random, sum) = body.split_at(30);
    github_checksum(random) == sum
}

/// Whether a base64 run decodes to a PEM (or OpenSSH/PGP armoured) private key block: the
/// decoded text starts with `-----BEGIN`, names a `PRIVATE KEY` in its header line, and holds
/// at least 32 bytes of body after it. Line breaks and surrounding whitespace inside the run
/// (wrapped `base64` output) are ignored.
pub(crate) fn base64_pem_private_key(run: &[u8]) -> bool {
    // Only the head is needed: the header line and the start of the body. Decoding a prefix
    // that is a multiple of 4 characters keeps this cheap on long runs.
    let compact: Vec<u8> = run
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .take(512)
        .collect();
    let usable = compact.len() - compact.len() % 4;
    let head = &compact[..usable];
    let decoded = match base64::engine::general_purpose::STANDARD.decode(head) {
        Ok(d) => d,
        // A full run may end in padding that a prefix cut lands on: retry without padding.
        Err(_) => match base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(head.strip_suffix(b"=").unwrap_or(head))
        {
            Ok(d) => d,
            Err(_) => return false,
        },
    };
    let Some(rest) = decoded.strip_prefix(b"-----BEGIN") else {
        return false;
    };
    let line_end = rest
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap_or(rest.len());
    let header = &rest[..line_end];
    let named = header.windows(11).any(|w| w == b"PRIVATE KEY") && header.ends_with(b"-----");
    named && rest.len() - line_end >= 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_pads_and_orders_the_alphabet() {
        assert_eq!(&base62_crc(0), b"000000");
        assert_eq!(&base62_crc(61), b"00000z");
        assert_eq!(&base62_crc(62), b"000010");
        assert_eq!(&base62_crc(u32::MAX), b"4gfFC3");
    }

    #[test]
    fn github_checksum_is_checked_on_classic_bodies() {
        let random = b"Zq8RfT2mWk9LxV4nBc7YhJ3sPd6Ga1";
        let sum = github_checksum(random);
        let good = [&b"gh"[..], b"p_", random, &sum].concat();
        assert!(github_crc32(&good));
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert!(!github_crc32(&bad));
        assert!(!github_crc32(b"no-underscore"));
        assert!(!github_crc32(&[&b"gh"[..], b"p_", &random[..20]].concat()));
    }

    #[test]
    fn base64_pem_needs_a_private_key_header_and_body() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n";
        let key = format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----\n");
        assert!(base64_pem_private_key(b64(&key).as_bytes()));
        // Wrapped at 76 columns, as `base64` prints it.
        let wrapped: String = b64(&key)
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        assert!(base64_pem_private_key(wrapped.as_bytes()));
        let public = format!("-----BEGIN PUBLIC KEY-----\n{body}-----END PUBLIC KEY-----\n");
        assert!(!base64_pem_private_key(b64(&public).as_bytes()));
        assert!(!base64_pem_private_key(
            b64("-----BEGIN PRIVATE KEY-----\n").as_bytes()
        ));
        assert!(!base64_pem_private_key(b"LS0tLS1CRUdJTi%%%%"));
    }
}
