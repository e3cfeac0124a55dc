//! Decoding of register and bit values into readings, and encoding of values for writes.
//!
//! Registers are 16-bit words in wire order. A 32- or 64-bit value spans 2 or 4 registers,
//! and its [`WordOrder`] defines how the wire bytes map to the big-endian bytes of the value:
//!
//! | order | meaning | 32-bit value `0xAABBCCDD` on the wire |
//! | --- | --- | --- |
//! | `ABCD` | big-endian words, big-endian bytes | `0xAABB 0xCCDD` |
//! | `CDAB` | low word first, big-endian bytes in each word | `0xCCDD 0xAABB` |
//! | `BADC` | big-endian words, bytes swapped in each word | `0xBBAA 0xDDCC` |
//! | `DCBA` | fully little-endian | `0xDDCC 0xBBAA` |
//!
//! 64-bit values extend the same rule to four words: `CDAB` reverses the word order, `BADC`
//! swaps the bytes inside each word, and `DCBA` reverses all eight bytes.
//!
//! Decoding applies the sign of the type first, then `value * scale + offset`. A value that is
//! NaN or infinite, before or after scaling, is an error and never a number.

use std::fmt;

use serde::Deserialize;

use crate::reading::Value;

/// Order of the registers and bytes of a 32- or 64-bit value on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum WordOrder {
    /// Big-endian: most significant word first, most significant byte first.
    #[default]
    ABCD,
    /// Least significant word first, bytes big-endian inside each word.
    CDAB,
    /// Most significant word first, bytes swapped inside each word.
    BADC,
    /// Little-endian: least significant byte first.
    DCBA,
}

impl WordOrder {
    pub const ALL: [WordOrder; 4] = [
        WordOrder::ABCD,
        WordOrder::CDAB,
        WordOrder::BADC,
        WordOrder::DCBA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WordOrder::ABCD => "ABCD",
            WordOrder::CDAB => "CDAB",
            WordOrder::BADC => "BADC",
            WordOrder::DCBA => "DCBA",
        }
    }

    fn words_reversed(self) -> bool {
        matches!(self, WordOrder::CDAB | WordOrder::DCBA)
    }

    fn bytes_swapped(self) -> bool {
        matches!(self, WordOrder::BADC | WordOrder::DCBA)
    }
}

impl fmt::Display for WordOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The data type of a point, with the parameters that some types need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    /// IEEE 754 single precision.
    F32,
    /// IEEE 754 double precision.
    F64,
    /// One coil or discrete input, decoded as 0 or 1.
    Bool,
    /// `bits` bits of one register starting at bit `bit` (0 is the least significant),
    /// decoded as an unsigned number.
    Bitfield {
        bit: u8,
        bits: u8,
    },
    /// Text of `length` registers, two bytes per register, high byte first. Decoding stops
    /// at the first NUL and trims trailing spaces.
    String {
        length: u16,
    },
}

impl ValueType {
    /// Returns the name used in device maps, such as `f32`.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F32 => "f32",
            ValueType::F64 => "f64",
            ValueType::Bool => "bool",
            ValueType::Bitfield { .. } => "bitfield",
            ValueType::String { .. } => "string",
        }
    }

    /// Number of registers the value occupies; 1 for a coil or discrete input.
    pub fn register_count(self) -> u16 {
        match self {
            ValueType::U16 | ValueType::I16 | ValueType::Bool | ValueType::Bitfield { .. } => 1,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 2,
            ValueType::U64 | ValueType::I64 | ValueType::F64 => 4,
            ValueType::String { length } => length,
        }
    }

    /// Returns true when a word order applies, which is the case for 32- and 64-bit types only.
    pub fn has_word_order(self) -> bool {
        matches!(
            self,
            ValueType::U32
                | ValueType::I32
                | ValueType::F32
                | ValueType::U64
                | ValueType::I64
                | ValueType::F64
        )
    }

    /// Returns true when scale and offset apply, which is the case for every numeric register
    /// type.
    pub fn is_scalable(self) -> bool {
        !matches!(self, ValueType::Bool | ValueType::String { .. })
    }
}

/// Everything needed to turn raw registers into a value and back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Encoding {
    pub value_type: ValueType,
    /// Word order of 32- and 64-bit types; ignored for the others.
    pub order: WordOrder,
    /// Factor applied after decoding the raw value.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
}

impl Encoding {
    /// Creates an encoding without scaling.
    pub fn new(value_type: ValueType, order: WordOrder) -> Self {
        Encoding {
            value_type,
            order,
            scale: 1.0,
            offset: 0.0,
        }
    }

    pub fn scaled(mut self, scale: f64, offset: f64) -> Self {
        self.scale = scale;
        self.offset = offset;
        self
    }
}

/// A raw value as the device stores it, before scale and offset.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text(String),
}

/// Failure to decode registers into a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("expected {expected} register(s) for {type_name}, got {actual}")]
    WrongLength {
        type_name: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("decoded value is {value} from registers [{registers}], not a finite number")]
    NotFinite { value: String, registers: String },
    #[error("invalid encoding: {0}")]
    InvalidEncoding(String),
}

/// Failure to encode a value for a write.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("value {0} is not a finite number")]
    NotFinite(f64),
    #[error("value {value} gives raw value {raw} after scale and offset, outside the {type_name} range {min} to {max}")]
    OutOfRange {
        value: f64,
        raw: f64,
        type_name: &'static str,
        min: String,
        max: String,
    },
    #[error("value {0} is not valid for a coil; write 0 or 1")]
    NotBoolean(f64),
    #[error("{0} points cannot be written")]
    Unsupported(&'static str),
}

/// Formats registers as `0x436E, 0x9BD4` for error details.
pub fn format_registers(words: &[u16]) -> String {
    let parts: Vec<String> = words.iter().map(|w| format!("0x{w:04X}")).collect();
    parts.join(", ")
}

/// Arranges registers into the big-endian bytes of the value they carry.
pub fn value_bytes(order: WordOrder, words: &[u16]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(words.len() * 2);
    let mut push = |word: u16| {
        let [high, low] = word.to_be_bytes();
        if order.bytes_swapped() {
            bytes.push(low);
            bytes.push(high);
        } else {
            bytes.push(high);
            bytes.push(low);
        }
    };
    if order.words_reversed() {
        words.iter().rev().for_each(|&w| push(w));
    } else {
        words.iter().for_each(|&w| push(w));
    }
    bytes
}

/// Arranges the big-endian bytes of a value into registers in wire order; the inverse of
/// [`value_bytes`]. A trailing odd byte is ignored.
pub fn words_from_value_bytes(order: WordOrder, bytes: &[u8]) -> Vec<u16> {
    let mut words: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| {
            if order.bytes_swapped() {
                u16::from_be_bytes([pair[1], pair[0]])
            } else {
                u16::from_be_bytes([pair[0], pair[1]])
            }
        })
        .collect();
    if order.words_reversed() {
        words.reverse();
    }
    words
}

fn check_bitfield(bit: u8, bits: u8) -> Result<(), DecodeError> {
    if bits == 0 || u16::from(bit) + u16::from(bits) > 16 {
        return Err(DecodeError::InvalidEncoding(format!(
            "bitfield bit {bit} with {bits} bit(s) does not fit in a 16-bit register"
        )));
    }
    Ok(())
}

/// Decodes registers into the raw value, before scale and offset.
pub fn decode_raw(encoding: &Encoding, words: &[u16]) -> Result<RawValue, DecodeError> {
    let value_type = encoding.value_type;
    let expected = usize::from(value_type.register_count());
    if words.len() != expected || expected == 0 {
        return Err(DecodeError::WrongLength {
            type_name: value_type.name(),
            expected,
            actual: words.len(),
        });
    }
    let bytes = value_bytes(encoding.order, words);
    let raw = match value_type {
        ValueType::U16 => RawValue::Unsigned(u64::from(words[0])),
        ValueType::I16 => RawValue::Signed(i64::from(words[0] as i16)),
        ValueType::U32 => RawValue::Unsigned(u64::from(u32::from_be_bytes(array4(&bytes)))),
        ValueType::I32 => RawValue::Signed(i64::from(i32::from_be_bytes(array4(&bytes)))),
        ValueType::F32 => RawValue::Float(f64::from(f32::from_be_bytes(array4(&bytes)))),
        ValueType::U64 => RawValue::Unsigned(u64::from_be_bytes(array8(&bytes))),
        ValueType::I64 => RawValue::Signed(i64::from_be_bytes(array8(&bytes))),
        ValueType::F64 => RawValue::Float(f64::from_be_bytes(array8(&bytes))),
        ValueType::Bool => RawValue::Unsigned(u64::from(words[0] != 0)),
        ValueType::Bitfield { bit, bits } => {
            check_bitfield(bit, bits)?;
            let mask = if bits == 16 {
                0xFFFF
            } else {
                (1u32 << bits) - 1
            };
            RawValue::Unsigned(u64::from((u32::from(words[0]) >> bit) & mask))
        }
        ValueType::String { .. } => RawValue::Text(decode_text(&bytes)),
    };
    Ok(raw)
}

/// Decodes text bytes: up to the first NUL, trailing spaces trimmed. Bytes that are not
/// UTF-8 are read as Latin-1, which older devices use, so decoding never fails.
fn decode_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = &bytes[..end];
    let decoded = match std::str::from_utf8(text) {
        Ok(text) => text.to_string(),
        Err(_) => text.iter().map(|&b| char::from(b)).collect(),
    };
    decoded.trim_end_matches(' ').to_string()
}

fn array4(bytes: &[u8]) -> [u8; 4] {
    let mut out = [0u8; 4];
    out.copy_from_slice(&bytes[..4]);
    out
}

fn array8(bytes: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[..8]);
    out
}

/// Decodes registers into a value: the raw value with its sign, then scale and offset.
/// A NaN or infinite result is an error.
pub fn decode_registers(encoding: &Encoding, words: &[u16]) -> Result<Value, DecodeError> {
    let raw = decode_raw(encoding, words)?;
    let number = match raw {
        RawValue::Text(text) => return Ok(Value::Text(text)),
        RawValue::Unsigned(n) => n as f64,
        RawValue::Signed(n) => n as f64,
        RawValue::Float(f) => f,
    };
    if !number.is_finite() {
        return Err(DecodeError::NotFinite {
            value: number.to_string(),
            registers: format_registers(words),
        });
    }
    scale_number(encoding, number, words)
}

fn scale_number(encoding: &Encoding, number: f64, words: &[u16]) -> Result<Value, DecodeError> {
    let scaled = if encoding.value_type.is_scalable() {
        number * encoding.scale + encoding.offset
    } else {
        number
    };
    if !scaled.is_finite() {
        return Err(DecodeError::NotFinite {
            value: format!(
                "{scaled} after scale {} and offset {}",
                encoding.scale, encoding.offset
            ),
            registers: format_registers(words),
        });
    }
    Ok(Value::Number(scaled))
}

/// Decodes one coil or discrete input as 0 or 1.
pub fn decode_bit(bit: bool) -> Value {
    Value::Number(if bit { 1.0 } else { 0.0 })
}

/// Encodes a raw value into registers in wire order. The raw value must fit the type.
pub fn encode_raw(encoding: &Encoding, raw: &RawValue) -> Result<Vec<u16>, EncodeError> {
    let order = encoding.order;
    let words = match (encoding.value_type, raw) {
        (ValueType::U16, RawValue::Unsigned(n)) => vec![*n as u16],
        (ValueType::I16, RawValue::Signed(n)) => vec![*n as i16 as u16],
        (ValueType::U32, RawValue::Unsigned(n)) => {
            words_from_value_bytes(order, &(*n as u32).to_be_bytes())
        }
        (ValueType::I32, RawValue::Signed(n)) => {
            words_from_value_bytes(order, &(*n as i32).to_be_bytes())
        }
        (ValueType::F32, RawValue::Float(f)) => {
            words_from_value_bytes(order, &(*f as f32).to_be_bytes())
        }
        (ValueType::U64, RawValue::Unsigned(n)) => words_from_value_bytes(order, &n.to_be_bytes()),
        (ValueType::I64, RawValue::Signed(n)) => words_from_value_bytes(order, &n.to_be_bytes()),
        (ValueType::F64, RawValue::Float(f)) => words_from_value_bytes(order, &f.to_be_bytes()),
        (value_type, _) => return Err(EncodeError::Unsupported(value_type.name())),
    };
    Ok(words)
}

/// Encodes a value for a register write: scale and offset inverted, rounded to the nearest
/// integer for integer types, and checked against the range of the type.
pub fn encode_value(encoding: &Encoding, value: f64) -> Result<Vec<u16>, EncodeError> {
    if !value.is_finite() {
        return Err(EncodeError::NotFinite(value));
    }
    let value_type = encoding.value_type;
    if !value_type.is_scalable() || matches!(value_type, ValueType::Bitfield { .. }) {
        return Err(EncodeError::Unsupported(value_type.name()));
    }
    let raw = (value - encoding.offset) / encoding.scale;
    let out_of_range = |min: String, max: String| EncodeError::OutOfRange {
        value,
        raw,
        type_name: value_type.name(),
        min,
        max,
    };
    if !raw.is_finite() {
        return Err(out_of_range("-inf".into(), "inf".into()));
    }
    let raw_value = match value_type {
        ValueType::F32 => {
            if raw.abs() > f64::from(f32::MAX) {
                return Err(out_of_range(f32::MIN.to_string(), f32::MAX.to_string()));
            }
            RawValue::Float(raw)
        }
        ValueType::F64 => RawValue::Float(raw),
        ValueType::U16 | ValueType::U32 | ValueType::U64 => {
            let (max, limit) = match value_type {
                ValueType::U16 => (u64::from(u16::MAX), 65_536.0),
                ValueType::U32 => (u64::from(u32::MAX), 4_294_967_296.0),
                _ => (u64::MAX, 18_446_744_073_709_551_616.0),
            };
            // `limit` is the exclusive upper bound 2^16, 2^32 or 2^64, each exact in f64.
            let rounded = raw.round();
            if rounded < 0.0 || rounded >= limit {
                return Err(out_of_range("0".into(), max.to_string()));
            }
            RawValue::Unsigned(rounded as u64)
        }
        ValueType::I16 | ValueType::I32 | ValueType::I64 => {
            let (min, max, limit) = match value_type {
                ValueType::I16 => (i64::from(i16::MIN), i64::from(i16::MAX), 32_768.0),
                ValueType::I32 => (i64::from(i32::MIN), i64::from(i32::MAX), 2_147_483_648.0),
                _ => (i64::MIN, i64::MAX, 9_223_372_036_854_775_808.0),
            };
            // The range is -limit inclusive to limit exclusive, with limit 2^15, 2^31 or 2^63.
            let rounded = raw.round();
            if rounded < -limit || rounded >= limit {
                return Err(out_of_range(min.to_string(), max.to_string()));
            }
            RawValue::Signed(rounded as i64)
        }
        ValueType::Bool | ValueType::Bitfield { .. } | ValueType::String { .. } => {
            return Err(EncodeError::Unsupported(value_type.name()));
        }
    };
    encode_raw(encoding, &raw_value)
}

/// Encodes a value for a coil write: exactly 0 or 1.
pub fn encode_bit(value: f64) -> Result<bool, EncodeError> {
    if value == 0.0 {
        Ok(false)
    } else if value == 1.0 {
        Ok(true)
    } else if value.is_finite() {
        Err(EncodeError::NotBoolean(value))
    } else {
        Err(EncodeError::NotFinite(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn number(value: Result<Value, DecodeError>) -> f64 {
        match value {
            Ok(Value::Number(n)) => n,
            other => panic!("expected a number, got {other:?}"),
        }
    }

    fn scaled(value_type: ValueType, scale: f64) -> Encoding {
        Encoding::new(value_type, WordOrder::ABCD).scaled(scale, 0.0)
    }

    #[test]
    fn f32_every_order_gives_238_6087() {
        // A meter voltage sent as IEEE float 0x436E9BD4 in each of the four orders.
        let cases = [
            (WordOrder::ABCD, [0x436E, 0x9BD4]),
            (WordOrder::CDAB, [0x9BD4, 0x436E]),
            (WordOrder::BADC, [0x6E43, 0xD49B]),
            (WordOrder::DCBA, [0xD49B, 0x6E43]),
        ];
        for (order, words) in cases {
            let value = number(decode_registers(
                &Encoding::new(ValueType::F32, order),
                &words,
            ));
            assert!((value - 238.6087).abs() < 0.001, "{order}: {value}");
        }
    }

    #[test]
    fn f32_cdab_misread_as_abcd_is_tiny() {
        let value = number(decode_registers(
            &Encoding::new(ValueType::F32, WordOrder::ABCD),
            &[0x9BD4, 0x436E],
        ));
        assert!((value - -3.51e-22).abs() < 1e-24, "{value}");
    }

    #[test]
    fn scale_applies_after_ieee_decode() {
        let encoding = Encoding::new(ValueType::F32, WordOrder::CDAB).scaled(0.01, 0.0);
        let value = number(decode_registers(&encoding, &[0x9BD4, 0x436E]));
        assert!((value - 2.386087).abs() < 0.00001, "{value}");
    }

    #[test]
    fn i16_sign_before_scale() {
        let cases = [
            (0xFFF6, 0.01, -0.10),
            (0xFF9C, 0.1, -10.0),
            (0xFFFF, 0.1, -0.1),
            (0x8000, 0.1, -3276.8),
            (0x7FFF, 0.1, 3276.7),
        ];
        for (word, scale, expected) in cases {
            let value = number(decode_registers(&scaled(ValueType::I16, scale), &[word]));
            assert!((value - expected).abs() < 1e-9, "0x{word:04X}: {value}");
        }
    }

    #[test]
    fn u16_keeps_registers_unsigned() {
        let cases = [
            (0xFFF6, 0.01, 655.26),
            (0xFF9C, 0.1, 6543.6),
            (0xFFFF, 0.1, 6553.5),
        ];
        for (word, scale, expected) in cases {
            let value = number(decode_registers(&scaled(ValueType::U16, scale), &[word]));
            assert!((value - expected).abs() < 1e-9, "0x{word:04X}: {value}");
        }
    }

    #[test]
    fn i64_big_endian_energy_counter() {
        let words = [0x0000, 0x0000, 0x0012, 0xD687];
        let value = number(decode_registers(
            &Encoding::new(ValueType::I64, WordOrder::ABCD),
            &words,
        ));
        assert_eq!(value, 1_234_567.0);
        let reversed = decode_raw(&Encoding::new(ValueType::I64, WordOrder::CDAB), &words);
        assert_eq!(reversed, Ok(RawValue::Signed(-2_988_419_750_427_623_424)));
    }

    #[test]
    fn f64_little_endian_and_nan_when_misread() {
        let words = [0x7FFB, 0x3A70, 0xCE88, 0xFB3F];
        let value = number(decode_registers(
            &Encoding::new(ValueType::F64, WordOrder::DCBA),
            &words,
        ));
        assert!((value - 1.7209).abs() < 0.0001, "{value}");
        let misread = decode_registers(&Encoding::new(ValueType::F64, WordOrder::ABCD), &words);
        assert!(
            matches!(&misread, Err(DecodeError::NotFinite { value, .. }) if value == "NaN"),
            "{misread:?}"
        );
    }

    #[test]
    fn f32_grid_frequency() {
        let value = number(decode_registers(
            &Encoding::new(ValueType::F32, WordOrder::ABCD),
            &[0x4248, 0x082E],
        ));
        assert!((value - 50.00799).abs() < 0.00001, "{value}");
    }

    #[test]
    fn infinity_and_overflow_are_not_numbers() {
        let infinity = decode_registers(
            &Encoding::new(ValueType::F32, WordOrder::ABCD),
            &[0x7F80, 0x0000],
        );
        assert!(matches!(infinity, Err(DecodeError::NotFinite { .. })));
        let huge = Encoding::new(ValueType::F64, WordOrder::ABCD).scaled(10.0, 0.0);
        let overflow = decode_registers(
            &huge,
            &words_from_value_bytes(WordOrder::ABCD, &f64::MAX.to_be_bytes()),
        );
        assert!(matches!(overflow, Err(DecodeError::NotFinite { .. })));
    }

    #[test]
    fn wrong_register_count_rejected() {
        let encoding = Encoding::new(ValueType::U32, WordOrder::ABCD);
        assert_eq!(
            decode_registers(&encoding, &[0x0009]),
            Err(DecodeError::WrongLength {
                type_name: "u32",
                expected: 2,
                actual: 1
            })
        );
        assert!(decode_registers(&encoding, &[1, 2, 3]).is_err());
    }

    #[test]
    fn bitfield_and_string() {
        let field = Encoding::new(ValueType::Bitfield { bit: 4, bits: 3 }, WordOrder::ABCD);
        assert_eq!(
            decode_registers(&field, &[0b0101_0000]),
            Ok(Value::Number(5.0))
        );
        let full = Encoding::new(ValueType::Bitfield { bit: 0, bits: 16 }, WordOrder::ABCD);
        assert_eq!(
            decode_registers(&full, &[0xFFFF]),
            Ok(Value::Number(65535.0))
        );
        let bad = Encoding::new(ValueType::Bitfield { bit: 15, bits: 2 }, WordOrder::ABCD);
        assert!(matches!(
            decode_registers(&bad, &[0]),
            Err(DecodeError::InvalidEncoding(_))
        ));
        let text = Encoding::new(ValueType::String { length: 3 }, WordOrder::ABCD);
        assert_eq!(
            decode_registers(&text, &[0x4142, 0x4320, 0x0000]),
            Ok(Value::Text("ABC".into()))
        );
        assert_eq!(
            decode_registers(&text, &[0x4142, 0xE920, 0x2020]),
            Ok(Value::Text("ABé".into()))
        );
    }

    #[test]
    fn encode_range_errors_name_the_value() {
        let encoding = Encoding::new(ValueType::U16, WordOrder::ABCD);
        let error = encode_value(&encoding, 70000.0).unwrap_err();
        assert!(error.to_string().contains("70000"), "{error}");
        assert!(error.to_string().contains("u16"), "{error}");
        assert!(encode_value(&encoding, -1.0).is_err());
        assert_eq!(encode_value(&encoding, 65535.0), Ok(vec![0xFFFF]));
        let setpoint = Encoding::new(ValueType::I16, WordOrder::ABCD).scaled(0.1, 0.0);
        assert_eq!(encode_value(&setpoint, -10.0), Ok(vec![0xFF9C]));
        assert!(encode_value(&setpoint, 3276.8).is_err());
        assert!(encode_value(&setpoint, f64::NAN).is_err());
        let float = Encoding::new(ValueType::F32, WordOrder::ABCD);
        assert!(encode_value(&float, 1e39).is_err());
        let unsigned64 = Encoding::new(ValueType::U64, WordOrder::ABCD);
        assert!(encode_value(&unsigned64, 2f64.powi(64)).is_err());
        let signed64 = Encoding::new(ValueType::I64, WordOrder::ABCD);
        assert!(encode_value(&signed64, 2f64.powi(63)).is_err());
        assert!(encode_value(&signed64, -(2f64.powi(63))).is_ok());
        assert_eq!(encode_bit(1.0), Ok(true));
        assert!(encode_bit(2.0).is_err());
    }

    fn numeric_types() -> impl Strategy<Value = ValueType> {
        prop_oneof![
            Just(ValueType::U16),
            Just(ValueType::I16),
            Just(ValueType::U32),
            Just(ValueType::I32),
            Just(ValueType::U64),
            Just(ValueType::I64),
            Just(ValueType::F32),
            Just(ValueType::F64),
        ]
    }

    fn orders() -> impl Strategy<Value = WordOrder> {
        prop_oneof![
            Just(WordOrder::ABCD),
            Just(WordOrder::CDAB),
            Just(WordOrder::BADC),
            Just(WordOrder::DCBA),
        ]
    }

    proptest! {
        #[test]
        fn raw_round_trip_every_type_and_order(
            value_type in numeric_types(),
            order in orders(),
            words in proptest::collection::vec(any::<u16>(), 4),
        ) {
            let encoding = Encoding::new(value_type, order);
            let words = &words[..usize::from(value_type.register_count())];
            let raw = decode_raw(&encoding, words).unwrap();
            let is_nan = matches!(raw, RawValue::Float(f) if f.is_nan());
            // f32 NaN payloads are not kept through f64, so NaN is compared by kind only.
            if !is_nan {
                let encoded = encode_raw(&encoding, &raw).unwrap();
                prop_assert_eq!(encoded, words.to_vec());
            }
        }

        #[test]
        fn value_round_trip_exact_integers(
            value_type in numeric_types(),
            order in orders(),
            value in -1_000_000_000i64..1_000_000_000i64,
        ) {
            let encoding = Encoding::new(value_type, order);
            let value = match value_type {
                ValueType::U16 => value.rem_euclid(65_536),
                ValueType::I16 => value.rem_euclid(65_536) - 32_768,
                ValueType::U32 | ValueType::U64 => value.abs(),
                // f32 represents every integer up to 2^24 exactly.
                ValueType::F32 => value % 16_777_216,
                _ => value,
            } as f64;
            let words = encode_value(&encoding, value).unwrap();
            prop_assert_eq!(words.len(), usize::from(value_type.register_count()));
            let decoded = decode_registers(&encoding, &words).unwrap();
            prop_assert_eq!(decoded, Value::Number(value));
        }

        #[test]
        fn scaled_round_trip_within_half_a_step(
            order in orders(),
            raw in -30_000i32..30_000i32,
            scale in prop_oneof![Just(0.1), Just(0.01), Just(10.0), Just(0.5)],
            offset in -100.0f64..100.0,
        ) {
            let encoding = Encoding::new(ValueType::I32, order).scaled(scale, offset);
            let value = f64::from(raw) * scale + offset;
            let words = encode_value(&encoding, value).unwrap();
            let decoded = match decode_registers(&encoding, &words).unwrap() {
                Value::Number(n) => n,
                Value::Text(_) => unreachable!("numeric type"),
            };
            prop_assert!((decoded - value).abs() <= scale.abs() / 2.0 + 1e-9);
        }

        #[test]
        fn decode_never_panics(
            value_type in prop_oneof![
                numeric_types(),
                (0u8..20, 0u8..20).prop_map(|(bit, bits)| ValueType::Bitfield { bit, bits }),
                (0u16..8).prop_map(|length| ValueType::String { length }),
                Just(ValueType::Bool),
            ],
            order in orders(),
            scale in any::<f64>(),
            offset in any::<f64>(),
            words in proptest::collection::vec(any::<u16>(), 0..10),
        ) {
            let encoding = Encoding::new(value_type, order).scaled(scale, offset);
            if let Ok(Value::Number(n)) = decode_registers(&encoding, &words) {
                prop_assert!(n.is_finite());
            }
        }
    }
}
