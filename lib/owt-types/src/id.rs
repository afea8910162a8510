//! Ids in the shape OWT clients know: 24 lowercase hex digits like a MongoDB ObjectId
//! (4 bytes of seconds since the epoch, 5 random bytes fixed per process, a 3-byte counter
//! starting at a random value), so ids made by one process sort by creation order and
//! existing applications that store or validate them keep working.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 12]);

static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
static PROCESS_RANDOM: OnceLock<[u8; 5]> = OnceLock::new();

impl ObjectId {
    pub fn generate() -> Self {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0);
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        bytes[4..9].copy_from_slice(PROCESS_RANDOM.get_or_init(rand::random));
        let counter = COUNTER.get_or_init(|| AtomicU32::new(rand::random::<u32>() & 0x00ff_ffff));
        let count = counter.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        bytes[9..].copy_from_slice(&count[1..]);
        ObjectId(bytes)
    }

    /// Parses 24 hex digits (either case); anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 24 {
            return None;
        }
        let mut bytes = [0u8; 12];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(ObjectId(bytes))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_round_trip() {
        let a = ObjectId::generate();
        let b = ObjectId::generate();
        assert_ne!(a, b);
        assert!(a < b || a.0[9..] == [0xff, 0xff, 0xff], "ids of one process sort by creation");
        assert_eq!(ObjectId::parse(&a.to_string()), Some(a));
        assert_eq!(a.to_string().len(), 24);
    }

    #[test]
    fn parse_rejects_bad_text() {
        for bad in ["", "abc", "zzzzzzzzzzzzzzzzzzzzzzzz", "5c2b0e0e0e0e0e0e0e0e0e0e0", "é2b0e0e0e0e0e0e0e0e0e0e"] {
            assert_eq!(ObjectId::parse(bad), None, "{bad}");
        }
    }
}
