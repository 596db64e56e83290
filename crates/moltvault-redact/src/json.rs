//! A validating JSON tokenizer over raw bytes that reports every string value with its path,
//! so replacements can be spliced into the original bytes (nothing is re-serialised).

/// One step of a path: an object key (raw, still escaped, bytes range) or an array index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(usize, usize),
    Index(usize),
}

/// A string value: its content range (inside the quotes) and where it sits.
#[derive(Debug, Clone)]
pub(crate) struct StrVal {
    pub start: usize,
    pub end: usize,
    pub path: Vec<Seg>,
}

/// Nesting deeper than this is treated as unparseable (raw-text fallback).
const MAX_NEST: usize = 256;

struct P<'a> {
    s: &'a [u8],
    /// Whether `s` holds a control character (invalid inside strings); most records hold
    /// none, and their strings then need no check of their own.
    ctrl: bool,
    i: usize,
    path: Vec<Seg>,
    out: Vec<StrVal>,
}

/// Tokenizes one JSON document (surrounding whitespace allowed); `None` if it is not valid JSON.
pub(crate) fn strings(s: &[u8]) -> Option<Vec<StrVal>> {
    std::str::from_utf8(s).ok()?;
    let mut p = P {
        s,
        // A fold without an early exit: the compiler vectorises it.
        ctrl: s.iter().fold(false, |c, &b| c | (b < 0x20)),
        i: 0,
        path: Vec::new(),
        out: Vec::new(),
    };
    p.ws();
    p.value()?;
    p.ws();
    if p.i != s.len() {
        return None;
    }
    Some(p.out)
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Option<()> {
        if self.path.len() > MAX_NEST {
            return None;
        }
        match *self.s.get(self.i)? {
            b'{' => {
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    let (ks, ke) = self.string()?;
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return None;
                    }
                    self.i += 1;
                    self.ws();
                    self.path.push(Seg::Key(ks, ke));
                    self.value()?;
                    self.path.pop();
                    self.ws();
                    match self.s.get(self.i)? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Some(());
                }
                let mut idx = 0;
                loop {
                    self.ws();
                    self.path.push(Seg::Index(idx));
                    self.value()?;
                    self.path.pop();
                    idx += 1;
                    self.ws();
                    match self.s.get(self.i)? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'"' => {
                let (start, end) = self.string()?;
                self.out.push(StrVal {
                    start,
                    end,
                    path: self.path.clone(),
                });
                Some(())
            }
            b't' => self.lit(b"true"),
            b'f' => self.lit(b"false"),
            b'n' => self.lit(b"null"),
            _ => self.number(),
        }
    }

    fn lit(&mut self, l: &[u8]) -> Option<()> {
        if self.s[self.i..].starts_with(l) {
            self.i += l.len();
            Some(())
        } else {
            None
        }
    }

    fn number(&mut self) -> Option<()> {
        let s = self.s;
        let start = self.i;
        if s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        while self.i < s.len() && s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        let int_len = self.i - int_start;
        if int_len == 0 || (int_len > 1 && s[int_start] == b'0') {
            return None;
        }
        if s.get(self.i) == Some(&b'.') {
            self.i += 1;
            let f = self.i;
            while self.i < s.len() && s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            if self.i == f {
                return None;
            }
        }
        if matches!(s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let f = self.i;
            while self.i < s.len() && s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            if self.i == f {
                return None;
            }
        }
        (self.i > start).then_some(())
    }

    /// Parses a string starting at the opening quote; returns its content range.
    fn string(&mut self) -> Option<(usize, usize)> {
        if self.s.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let start = self.i;
        loop {
            let rel = memchr::memchr3(b'"', b'\\', b'\n', &self.s[self.i..])?;
            // Control characters are invalid inside strings.
            if self.ctrl && self.s[self.i..self.i + rel].iter().any(|&b| b < 0x20) {
                return None;
            }
            self.i += rel;
            match self.s[self.i] {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Some((start, end));
                }
                b'\\' => {
                    let e = *self.s.get(self.i + 1)?;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            let h = self.s.get(self.i + 2..self.i + 6)?;
                            if !h.iter().all(|b| b.is_ascii_hexdigit()) {
                                return None;
                            }
                            self.i += 6;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_paths() {
        let s = br#"{"a":[1,"x",{"b\"c":"y"}],"d":-1.5e3,"e":true,"f":null}"#;
        let v = strings(s).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(&s[v[0].start..v[0].end], b"x");
        assert_eq!(v[1].path.len(), 3);
        assert!(strings(b"{\"a\":1} x").is_none());
        assert!(strings(b"{\"a\":01}").is_none());
        assert!(strings(b"{\"a\":\"\x01\"}").is_none());
        assert!(strings(b"[1,]").is_none());
        assert!(strings(b"\"ok\"\r").is_some());
        assert!(strings(b"").is_none());
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert!(strings(deep.as_bytes()).is_none());
    }

    #[test]
    fn agrees_with_serde_json_on_validity() {
        for s in [
            &b"{}"[..],
            b"[]",
            b"{\"a\":}",
            b"1.",
            b"-",
            b"\"\\x\"",
            b"\"\\u12G4\"",
            b"[1 2]",
            b"{\"a\" 1}",
            b"0",
            b"-0.0e+1",
        ] {
            assert_eq!(
                strings(s).is_some(),
                serde_json::from_slice::<serde_json::Value>(s).is_ok(),
                "{}",
                String::from_utf8_lossy(s)
            );
        }
    }
}
