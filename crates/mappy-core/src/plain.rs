//! Plain values: the encoding of a binding's side-stored values that a
//! file can hold without any code to rebuild them.
//!
//! A binding (the Python package) keeps values of its own kind in the side
//! store. Those made only of plain data (text, bytes, integers of any size,
//! floats, booleans, nothing, and sets of those) are written as a [`Plain`];
//! anything else is an [`Plain::Opaque`] byte string of the binding's own
//! encoding (Python's pickle), which a reader must refuse unless its caller
//! trusts the file: decoding it may run code.
//!
//! Each value starts with a tag byte:
//!
//! | tag | value | rest |
//! |---|---|---|
//! | 0 | none | nothing |
//! | 1 | false | nothing |
//! | 2 | true | nothing |
//! | 3 | integer | its minimal little-endian two's-complement bytes (at least one) |
//! | 4 | float | 8 bytes, IEEE-754 binary64 |
//! | 5 | text | UTF-8 |
//! | 6 | bytes | the bytes |
//! | 7 | frozen set | `u32` count, then per item: `u32` length, the item's encoding (tags 0 to 6) |
//! | 0x80 | opaque | the whole value, tag byte included (a pickle of protocol 2 or later starts so) |
//!
//! ```
//! use mappy_core::plain::Plain;
//! let v = Plain::Set(vec![Plain::Str("a".into()), Plain::Int(vec![7])]);
//! let mut bytes = Vec::new();
//! v.encode(&mut bytes);
//! assert_eq!(Plain::decode(&bytes).unwrap(), v);
//! assert!(Plain::decode(&bytes[..bytes.len() - 1]).is_err());
//! ```

use crate::error::{MapletError, Result};

/// A value of plain data, or an opaque byte string (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub enum Plain {
    /// Nothing (Python's `None`).
    None,
    /// A boolean.
    Bool(bool),
    /// An integer of any size: minimal little-endian two's-complement bytes.
    Int(Vec<u8>),
    /// A binary64 float.
    Float(f64),
    /// Text.
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A set of items, none of them a set.
    Set(Vec<Plain>),
    /// The binding's own encoding, starting with byte 0x80.
    Opaque(Vec<u8>),
}

const OPAQUE: u8 = 0x80;

fn corrupt(m: &str) -> MapletError {
    MapletError::Corrupt(format!("a stored value: {m}"))
}

impl Plain {
    /// Appends the value's encoding to `out`.
    ///
    /// # Panics
    /// If a set holds a set or an opaque value, or an opaque value does not
    /// start with 0x80: no decoder could read such bytes back.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Plain::None => out.push(0),
            Plain::Bool(b) => out.push(1 + *b as u8),
            Plain::Int(b) => {
                assert!(!b.is_empty(), "an integer has at least one byte");
                out.push(3);
                out.extend_from_slice(b);
            }
            Plain::Float(f) => {
                out.push(4);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Plain::Str(s) => {
                out.push(5);
                out.extend_from_slice(s.as_bytes());
            }
            Plain::Bytes(b) => {
                out.push(6);
                out.extend_from_slice(b);
            }
            Plain::Set(items) => {
                out.push(7);
                out.extend_from_slice(&(items.len() as u32).to_le_bytes());
                for item in items {
                    assert!(
                        !matches!(item, Plain::Set(_) | Plain::Opaque(_)),
                        "set items are plain scalars"
                    );
                    let at = out.len();
                    out.extend_from_slice(&[0; 4]);
                    item.encode(out);
                    let n = (out.len() - at - 4) as u32;
                    out[at..at + 4].copy_from_slice(&n.to_le_bytes());
                }
            }
            Plain::Opaque(b) => {
                assert_eq!(b.first(), Some(&OPAQUE), "opaque values start with 0x80");
                out.extend_from_slice(b);
            }
        }
    }

    /// The value whose encoding is exactly `bytes`.
    ///
    /// # Errors
    /// [`MapletError::Corrupt`] for bytes no value encodes to; nothing is
    /// allocated beyond what `bytes` holds.
    pub fn decode(bytes: &[u8]) -> Result<Plain> {
        Self::decode_at(bytes, true)
    }

    /// Whether `bytes`, a stored value, is opaque (without decoding it).
    pub fn is_opaque(bytes: &[u8]) -> bool {
        bytes.first() == Some(&OPAQUE)
    }

    fn decode_at(bytes: &[u8], top: bool) -> Result<Plain> {
        let (&tag, rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
        let nothing = |v: Plain| {
            if rest.is_empty() {
                Ok(v)
            } else {
                Err(corrupt("bytes after the value"))
            }
        };
        match tag {
            0 => nothing(Plain::None),
            1 => nothing(Plain::Bool(false)),
            2 => nothing(Plain::Bool(true)),
            3 if !rest.is_empty() => Ok(Plain::Int(rest.to_vec())),
            4 => Ok(Plain::Float(f64::from_le_bytes(
                rest.try_into()
                    .map_err(|_| corrupt("a float of the wrong length"))?,
            ))),
            5 => Ok(Plain::Str(
                std::str::from_utf8(rest)
                    .map_err(|_| corrupt("text that is not UTF-8"))?
                    .to_string(),
            )),
            6 => Ok(Plain::Bytes(rest.to_vec())),
            7 if top => {
                let mut rest = rest;
                let n = take_u32(&mut rest)? as usize;
                // Every item takes at least five bytes: no count can make
                // this allocate more than the input holds.
                if n > rest.len() / 5 {
                    return Err(corrupt("a set claims more items than its bytes hold"));
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let len = take_u32(&mut rest)? as usize;
                    if len > rest.len() {
                        return Err(corrupt("a set item runs past the value"));
                    }
                    let (item, tail) = rest.split_at(len);
                    items.push(Self::decode_at(item, false)?);
                    rest = tail;
                }
                if !rest.is_empty() {
                    return Err(corrupt("bytes after the set"));
                }
                Ok(Plain::Set(items))
            }
            OPAQUE if top => Ok(Plain::Opaque(bytes.to_vec())),
            _ => Err(corrupt("an unknown tag")),
        }
    }
}

fn take_u32(bytes: &mut &[u8]) -> Result<u32> {
    if bytes.len() < 4 {
        return Err(corrupt("truncated"));
    }
    let (n, rest) = bytes.split_at(4);
    *bytes = rest;
    Ok(u32::from_le_bytes(n.try_into().unwrap()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_every_truncation_fails_or_differs() {
        let values = [
            Plain::None,
            Plain::Bool(true),
            Plain::Bool(false),
            Plain::Int(vec![0xff]),
            Plain::Int(vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
            Plain::Float(-0.0),
            Plain::Str("ünï".into()),
            Plain::Bytes(vec![]),
            Plain::Set(vec![]),
            Plain::Set(vec![Plain::Str("a".into()), Plain::Float(1.5), Plain::None]),
            Plain::Opaque(vec![0x80, 4, 5]),
        ];
        for v in values {
            let mut b = Vec::new();
            v.encode(&mut b);
            assert_eq!(Plain::decode(&b).unwrap(), v);
            assert_eq!(Plain::is_opaque(&b), matches!(v, Plain::Opaque(_)));
        }
    }

    #[test]
    fn hostile_sets_are_refused_without_allocating() {
        // A count of four billion items in nine bytes.
        let b = [7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(Plain::decode(&b).is_err());
        // An item longer than the value.
        let b = [7, 1, 0, 0, 0, 0xff, 0, 0, 0, 5];
        assert!(Plain::decode(&b).is_err());
        // A set inside a set, and an opaque item.
        let b = [7, 1, 0, 0, 0, 5, 0, 0, 0, 7, 0, 0, 0, 0];
        assert!(Plain::decode(&b).is_err());
        let b = [7, 1, 0, 0, 0, 1, 0, 0, 0, 0x80];
        assert!(Plain::decode(&b).is_err());
        for b in [&[][..], &[3], &[4, 0], &[5, 0xff], &[9], &[0, 0]] {
            assert!(Plain::decode(b).is_err(), "{b:?}");
        }
    }
}
