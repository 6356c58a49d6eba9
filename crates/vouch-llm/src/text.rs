//! Generated tokens to text, one rule online (streaming) and offline (`vouch verify --response`): the text is the
//! concatenation of the tokens' pieces (end-of-turn and other control tokens have none), cut before the first stop
//! string, decoded as UTF-8 (invalid bytes become U+FFFD). While streaming, a delta never ends inside a UTF-8
//! sequence or inside what could still become a stop string, so the deltas concatenate to exactly that text.

/// The text of a generation so far.
#[derive(Debug, Clone)]
pub struct TextStream {
    bytes: Vec<u8>,
    stops: Vec<Vec<u8>>,
    /// Bytes already handed out as deltas.
    emitted: usize,
    /// Where the first stop string starts, once one appeared.
    stopped_at: Option<usize>,
}

impl TextStream {
    /// A stream that stops at any of `stops`.
    pub fn new(stops: &[String]) -> Self {
        Self {
            bytes: vec![],
            stops: stops.iter().map(|s| s.as_bytes().to_vec()).collect(),
            emitted: 0,
            stopped_at: None,
        }
    }

    /// Whether a stop string has appeared.
    pub fn stopped(&self) -> bool {
        self.stopped_at.is_some()
    }

    /// Appends a token's piece; returns the text that is now final (possibly empty).
    pub fn push(&mut self, piece: &[u8]) -> String {
        if self.stopped_at.is_some() {
            return String::new();
        }
        // A stop string may straddle pieces: search from where the longest stop could have started.
        let longest = self.stops.iter().map(Vec::len).max().unwrap_or(0);
        let from = self.bytes.len().saturating_sub(longest.saturating_sub(1));
        self.bytes.extend_from_slice(piece);
        self.stopped_at = self.stops.iter().filter_map(|s| find(&self.bytes[from..], s).map(|i| from + i)).min();
        self.take(false)
    }

    /// Whatever is left once generation ended.
    pub fn finish(&mut self) -> String {
        self.take(true)
    }

    /// The whole text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes[..self.stopped_at.unwrap_or(self.bytes.len())]).into_owned()
    }

    fn take(&mut self, done: bool) -> String {
        let mut end = match self.stopped_at {
            Some(at) => at,
            None if done => self.bytes.len(),
            // Hold back a tail that is a proper prefix of some stop string.
            None => {
                let held = self
                    .stops
                    .iter()
                    .map(|s| (1..s.len()).rev().find(|&k| self.bytes.ends_with(&s[..k])).unwrap_or(0))
                    .max()
                    .unwrap_or(0);
                self.bytes.len() - held
            }
        };
        end = end.max(self.emitted);
        let chunk = &self.bytes[self.emitted..end];
        let mut take = chunk.len();
        if !done && self.stopped_at.is_none() {
            // Hold back an incomplete UTF-8 sequence at the end (invalid bytes before it are final: they decode to
            // U+FFFD whatever follows).
            take = 0;
            loop {
                match std::str::from_utf8(&chunk[take..]) {
                    Ok(_) => {
                        take = chunk.len();
                        break;
                    }
                    Err(e) => match e.error_len() {
                        Some(n) => take += e.valid_up_to() + n,
                        None => {
                            take += e.valid_up_to();
                            break;
                        }
                    },
                }
            }
        }
        let out = String::from_utf8_lossy(&chunk[..take]).into_owned();
        self.emitted += take;
        out
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The final text of `pieces` under `stops` (what [`TextStream`]'s deltas add up to).
pub fn render<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, stops: &[String]) -> String {
    let mut t = TextStream::new(stops);
    for p in pieces {
        t.push(p);
        if t.stopped() {
            break;
        }
    }
    t.text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream(pieces: &[&[u8]], stops: &[String]) -> (String, String) {
        let mut t = TextStream::new(stops);
        let mut out = String::new();
        for p in pieces {
            out.push_str(&t.push(p));
            if t.stopped() {
                break;
            }
        }
        out.push_str(&t.finish());
        (out, t.text())
    }

    #[test]
    fn stops_straddling_pieces_and_utf8_across_tokens() {
        let stops = vec!["END".to_string()];
        let (s, t) = stream(&[b"he", b"llo E", b"N", b"D more"], &stops);
        assert_eq!(s, "hello ");
        assert_eq!(t, "hello ");
        // "é" is C3 A9, split over two tokens.
        let (s, _) = stream(&[b"caf", &[0xC3], &[0xA9], b"!"], &[]);
        assert_eq!(s, "café!");
        // A held-back prefix that does not become the stop string is released.
        let (s, _) = stream(&[b"E", b"N", b"x"], &stops);
        assert_eq!(s, "ENx");
        // Invalid bytes become U+FFFD, the same way in both views.
        let (s, t) = stream(&[&[0xFF], b"a"], &[]);
        assert_eq!(s, "\u{FFFD}a");
        assert_eq!(t, s);
    }

    proptest! {
        /// The streamed deltas always add up to the final text, whatever the pieces and stop strings.
        #[test]
        fn deltas_concatenate_to_the_text(
            pieces in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(0xC3u8), Just(0xA9u8), Just(0xFFu8)], 0..4), 0..12),
            stops in proptest::collection::vec("[ab]{1,3}", 0..3),
        ) {
            let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            let (streamed, text) = stream(&refs, &stops);
            prop_assert_eq!(&streamed, &text);
            prop_assert_eq!(render(refs.iter().copied(), &stops), text.clone());
            for s in &stops {
                prop_assert!(!text.contains(s.as_str()), "{text:?} contains the stop {s:?}");
            }
        }
    }
}
