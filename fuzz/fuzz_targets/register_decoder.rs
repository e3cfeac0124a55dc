//! Feeds arbitrary register values and encodings to the Modbus register decoder, which must
//! return a value or an error for every input and never panic.
//!
//! Input layout: byte 0 picks the type, byte 1 the word order, bytes 2 and 3 the bitfield
//! position and width or the string length, bytes 4 to 19 the scale and offset as f64, and
//! the rest are registers, two bytes each, big-endian.

#![no_main]

use caretaker_wire::codec::{decode_registers, Encoding, ValueType, WordOrder};
use caretaker_wire::reading::Value;
use libfuzzer_sys::fuzz_target;

fn f64_at(data: &[u8], start: usize, default: f64) -> f64 {
    match data.get(start..start + 8) {
        Some(bytes) => {
            let mut array = [0u8; 8];
            array.copy_from_slice(bytes);
            f64::from_be_bytes(array)
        }
        None => default,
    }
}

fuzz_target!(|data: &[u8]| {
    let byte = |index: usize| data.get(index).copied().unwrap_or(0);
    let value_type = match byte(0) % 11 {
        0 => ValueType::U16,
        1 => ValueType::I16,
        2 => ValueType::U32,
        3 => ValueType::I32,
        4 => ValueType::U64,
        5 => ValueType::I64,
        6 => ValueType::F32,
        7 => ValueType::F64,
        8 => ValueType::Bool,
        9 => ValueType::Bitfield {
            bit: byte(2),
            bits: byte(3),
        },
        _ => ValueType::String {
            length: u16::from(byte(3)),
        },
    };
    let order = WordOrder::ALL[usize::from(byte(1) % 4)];
    let encoding =
        Encoding::new(value_type, order).scaled(f64_at(data, 4, 1.0), f64_at(data, 12, 0.0));
    let words: Vec<u16> = data
        .get(20..)
        .unwrap_or(&[])
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect();
    if let Ok(Value::Number(number)) = decode_registers(&encoding, &words) {
        assert!(number.is_finite(), "decoder returned {number}");
    }
});
