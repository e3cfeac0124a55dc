//! Device register maps: one TOML file per kind of device, listing its points.
//!
//! ```toml
//! [device]
//! kind = "circulation-pump"
//! manufacturer = "Example"
//! model = "CP-40"
//! asset_kind = "pump"
//!
//! [[point]]
//! name = "discharge_pressure"
//! metric = "discharge_pressure"
//! unit = "bar"
//! reference = "30001"      # or: table = "input_register" with address = 0
//! type = "i16"
//! scale = 0.01
//! ```
//!
//! Every problem in a map is reported with its place in the file, all at once.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml_edit::Item;

use crate::config::{Diagnostics, TomlFile};
use crate::modbus::codec::{Encoding, ValueType, WordOrder};

/// Maximum registers in one read request (Modbus application protocol, function 03/04).
pub const MAX_READ_REGISTERS: u16 = 125;
/// Maximum coils or discrete inputs in one read request (function 01/02).
pub const MAX_READ_BITS: u16 = 2000;

/// One of the four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Coil,
    DiscreteInput,
    InputRegister,
    HoldingRegister,
}

impl Table {
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::DiscreteInput => "discrete_input",
            Table::InputRegister => "input_register",
            Table::HoldingRegister => "holding_register",
        }
    }

    /// Returns true when the table contains single bits rather than 16-bit registers.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }

    /// Returns true when a client may write the table.
    pub fn is_writable(self) -> bool {
        matches!(self, Table::Coil | Table::HoldingRegister)
    }

    /// Leading digit of the table in reference notation, such as 4 for `40001`.
    pub fn reference_digit(self) -> u8 {
        match self {
            Table::Coil => 0,
            Table::DiscreteInput => 1,
            Table::InputRegister => 3,
            Table::HoldingRegister => 4,
        }
    }

    /// Largest number of entries in one read of this table.
    pub fn max_read(self) -> u16 {
        if self.is_bits() {
            MAX_READ_BITS
        } else {
            MAX_READ_REGISTERS
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses reference notation such as `40001` or `300001` into its table and 0-based address.
///
/// The first digit names the table: 0 coil, 1 discrete input, 3 input register, 4 holding
/// register. The rest is the 1-based entry number, 4 digits (1 to 9999) in the 5-digit form
/// and 5 digits (1 to 65536) in the 6-digit form.
pub fn parse_reference(text: &str) -> Result<(Table, u16), String> {
    if !(text.len() == 5 || text.len() == 6) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid reference `{text}`: expected 5 or 6 digits such as 40001 or 400001"
        ));
    }
    let table = match text.as_bytes()[0] {
        b'0' => Table::Coil,
        b'1' => Table::DiscreteInput,
        b'3' => Table::InputRegister,
        b'4' => Table::HoldingRegister,
        other => {
            return Err(format!(
                "invalid reference `{text}`: leading digit {} names no table; use 0 (coil), \
                 1 (discrete input), 3 (input register) or 4 (holding register)",
                char::from(other)
            ))
        }
    };
    // The checks above leave 4 or 5 ASCII digits, so the parse cannot fail or overflow u32.
    let number: u32 = text[1..].parse().unwrap_or(0);
    let highest = if text.len() == 5 { 9999 } else { 65536 };
    if number == 0 || number > highest {
        return Err(format!(
            "invalid reference `{text}`: entry number {number} is outside 1 to {highest}"
        ));
    }
    Ok((table, (number - 1) as u16))
}

/// The `[device]` table of a map.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeviceInfo {
    /// Kind of equipment, such as `circulation-pump`.
    pub kind: String,
    pub manufacturer: String,
    pub model: String,
    /// Kind of asset the device belongs to, such as `pump`, `substation` or `meter`.
    pub asset_kind: String,
    /// Free text for operators.
    #[serde(default)]
    pub description: Option<String>,
}

/// One value of a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Unique within the map; the sensor id is `DEVICE.NAME`.
    pub name: String,
    pub metric: String,
    pub unit: String,
    pub table: Table,
    /// 0-based address of the first register or bit.
    pub address: u16,
    pub encoding: Encoding,
    /// Lowest plausible value, for the anomaly detectors; readings outside are still stored.
    /// A write below it is rejected.
    pub min: Option<f64>,
    /// Highest plausible value, for the anomaly detectors; readings outside are still stored.
    /// A write above it is rejected.
    pub max: Option<f64>,
    /// Alarm limit above which the asset needs maintenance, such as a bearing temperature.
    /// Trend forecasts predict when a reading will cross it.
    pub alarm_high: Option<f64>,
    /// Alarm limit below which the asset needs maintenance, such as a suction pressure.
    pub alarm_low: Option<f64>,
    pub writable: bool,
}

impl Point {
    /// Registers (or bits, in a bit table) the point occupies.
    pub fn count(&self) -> u16 {
        self.encoding.value_type.register_count()
    }

    /// Returns one past the last address, as u32 so that a point ending at 65535 fits.
    pub fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.count())
    }
}

/// A loaded and validated register map.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceMap {
    pub path: PathBuf,
    pub device: DeviceInfo,
    pub points: Vec<Point>,
}

impl DeviceMap {
    pub fn point(&self, name: &str) -> Option<&Point> {
        self.points.iter().find(|p| p.name == name)
    }
}

/// Type names as written in a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TypeName {
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    Bool,
    Bitfield,
    String,
}

/// A `[[point]]` table as written, before its checks.
#[derive(Debug, Deserialize)]
struct RawPoint {
    name: String,
    metric: String,
    unit: String,
    table: Option<Table>,
    address: Option<i64>,
    reference: Option<String>,
    #[serde(rename = "type")]
    type_name: TypeName,
    bit: Option<i64>,
    bits: Option<i64>,
    length: Option<i64>,
    order: Option<WordOrder>,
    scale: Option<f64>,
    offset: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    alarm_high: Option<f64>,
    alarm_low: Option<f64>,
    #[serde(default)]
    writable: bool,
}

/// Reports problems of one point, with the place of each key.
struct PointChecker<'a> {
    file: &'a TomlFile,
    diags: &'a mut Diagnostics,
    index: String,
    failed: bool,
}

impl PointChecker<'_> {
    fn report(&mut self, key: &str, message: impl Into<String>) {
        self.failed = true;
        let segments = ["point", self.index.as_str(), key];
        self.file.report_at(self.diags, &segments, message);
    }
}

/// Loads and checks a map file. Returns `None` when it has problems, each one reported.
pub fn load_map(path: &Path, diags: &mut Diagnostics) -> Option<DeviceMap> {
    let file = TomlFile::load(path, diags)?;
    parse_map(&file, diags)
}

/// Checks a parsed map file. Returns `None` when it has problems, each one reported.
pub fn parse_map(file: &TomlFile, diags: &mut Diagnostics) -> Option<DeviceMap> {
    let problems_before = diags.len();
    file.reject_unknown_top_level(&["device", "point"], diags);
    let device = check_device(file, diags);
    let points = check_points(file, diags);
    if diags.len() > problems_before {
        return None;
    }
    Some(DeviceMap {
        path: file.path.clone(),
        device: device?,
        points,
    })
}

fn check_device(file: &TomlFile, diags: &mut Diagnostics) -> Option<DeviceInfo> {
    let Some(item) = file.get("device") else {
        file.report(diags, "device", None, "missing [device] table");
        return None;
    };
    let device: DeviceInfo = file.deserialize(item, "device", diags)?;
    let texts = [
        ("kind", &device.kind),
        ("manufacturer", &device.manufacturer),
        ("model", &device.model),
        ("asset_kind", &device.asset_kind),
    ];
    for (key, value) in texts {
        if value.trim().is_empty() {
            file.report_at(diags, &["device", key], format!("{key} must not be empty"));
        }
    }
    Some(device)
}

fn check_points(file: &TomlFile, diags: &mut Diagnostics) -> Vec<Point> {
    let tables: Vec<toml_edit::Table> = match file.get("point") {
        None => {
            file.report(
                diags,
                "point",
                None,
                "no [[point]] tables; a map needs at least one point",
            );
            return Vec::new();
        }
        Some(Item::ArrayOfTables(array)) => array.iter().cloned().collect(),
        Some(other) => {
            file.report(
                diags,
                "point",
                other.span(),
                "expected one or more [[point]] tables",
            );
            return Vec::new();
        }
    };
    let mut points: Vec<(usize, Point)> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (index, table) in tables.into_iter().enumerate() {
        let key_path = format!("point[{index}]");
        let Some(raw) = file.deserialize::<RawPoint>(&Item::Table(table), &key_path, diags) else {
            continue;
        };
        let mut checker = PointChecker {
            file,
            diags,
            index: index.to_string(),
            failed: false,
        };
        if let Some(first) = names.get(&raw.name) {
            checker.report(
                "name",
                format!(
                    "duplicate point name `{}`; point[{first}] has it too",
                    raw.name
                ),
            );
        } else {
            names.insert(raw.name.clone(), index);
        }
        if let Some(point) = check_point(raw, &mut checker) {
            if !checker.failed {
                points.push((index, point));
            }
        }
    }
    check_overlaps(file, diags, &points);
    points.into_iter().map(|(_, point)| point).collect()
}

fn check_point(raw: RawPoint, checker: &mut PointChecker<'_>) -> Option<Point> {
    if raw.name.is_empty() || raw.name.contains('.') || raw.name.chars().any(char::is_whitespace) {
        checker.report(
            "name",
            format!(
                "invalid point name `{}`: use a non-empty name without dots or spaces",
                raw.name
            ),
        );
    }
    if raw.metric.trim().is_empty() {
        checker.report("metric", "metric must not be empty");
    }
    let (table, address) = check_location(&raw, checker)?;
    let value_type = check_type(&raw, table, checker)?;
    let order = match raw.order {
        Some(order) if !value_type.has_word_order() => {
            checker.report(
                "order",
                format!(
                    "order {order} applies only to 32- and 64-bit types, not {}",
                    value_type.name()
                ),
            );
            WordOrder::ABCD
        }
        Some(order) => order,
        None => WordOrder::ABCD,
    };
    let encoding = Encoding::new(value_type, order).scaled(
        check_factor("scale", raw.scale, 1.0, value_type, checker),
        check_factor("offset", raw.offset, 0.0, value_type, checker),
    );
    check_range(&raw, value_type, checker);
    check_writable(&raw, table, value_type, checker);
    let end = u32::from(address) + u32::from(value_type.register_count());
    if end > 65536 {
        checker.report(
            if raw.reference.is_some() {
                "reference"
            } else {
                "address"
            },
            format!(
                "{} at address {address} with {} register(s) ends beyond address 65535",
                value_type.name(),
                value_type.register_count()
            ),
        );
    }
    Some(Point {
        name: raw.name,
        metric: raw.metric,
        unit: raw.unit,
        table,
        address,
        encoding,
        min: raw.min,
        max: raw.max,
        alarm_high: raw.alarm_high,
        alarm_low: raw.alarm_low,
        writable: raw.writable,
    })
}

fn check_location(raw: &RawPoint, checker: &mut PointChecker<'_>) -> Option<(Table, u16)> {
    match (&raw.reference, raw.address) {
        (Some(_), Some(_)) => {
            checker.report("address", "give either address or reference, not both");
            None
        }
        (None, None) => {
            checker.report(
                "address",
                "missing address (0-based) or reference (such as \"40001\")",
            );
            None
        }
        (None, Some(address)) => {
            let Some(table) = raw.table else {
                checker.report(
                    "table",
                    "missing table: coil, discrete_input, input_register or holding_register",
                );
                return None;
            };
            if !(0..=65535).contains(&address) {
                checker.report(
                    "address",
                    format!("address {address} is outside 0 to 65535"),
                );
                return None;
            }
            Some((table, address as u16))
        }
        (Some(reference), None) => match parse_reference(reference) {
            Err(message) => {
                checker.report("reference", message);
                None
            }
            Ok((implied, address)) => {
                if let Some(table) = raw.table {
                    if table != implied {
                        checker.report(
                            "table",
                            format!(
                                "table {table} does not match reference `{reference}`, which \
                                 names a {implied}; remove table or fix the reference"
                            ),
                        );
                        return None;
                    }
                }
                Some((implied, address))
            }
        },
    }
}

fn check_type(raw: &RawPoint, table: Table, checker: &mut PointChecker<'_>) -> Option<ValueType> {
    let name = raw.type_name;
    if name != TypeName::Bitfield {
        for (key, value) in [("bit", raw.bit), ("bits", raw.bits)] {
            if value.is_some() {
                checker.report(key, format!("{key} applies only to type bitfield"));
            }
        }
    }
    if name != TypeName::String && raw.length.is_some() {
        checker.report("length", "length applies only to type string");
    }
    if table.is_bits() && name != TypeName::Bool {
        checker.report("type", format!("a {table} holds one bit; use type bool"));
        return None;
    }
    let value_type = match name {
        TypeName::U16 => ValueType::U16,
        TypeName::I16 => ValueType::I16,
        TypeName::U32 => ValueType::U32,
        TypeName::I32 => ValueType::I32,
        TypeName::U64 => ValueType::U64,
        TypeName::I64 => ValueType::I64,
        TypeName::F32 => ValueType::F32,
        TypeName::F64 => ValueType::F64,
        TypeName::Bool => {
            if !table.is_bits() {
                checker.report(
                    "type",
                    format!(
                        "type bool needs a coil or discrete_input; for a flag inside a {table} \
                         use type bitfield with bit"
                    ),
                );
                return None;
            }
            ValueType::Bool
        }
        TypeName::Bitfield => {
            let Some(bit) = raw.bit else {
                checker.report(
                    "bit",
                    "type bitfield needs bit (0 to 15, 0 is the least significant)",
                );
                return None;
            };
            let bits = raw.bits.unwrap_or(1);
            if !(0..=15).contains(&bit) {
                checker.report("bit", format!("bit {bit} is outside 0 to 15"));
                return None;
            }
            if !(1..=16).contains(&bits) || bit + bits > 16 {
                checker.report(
                    "bits",
                    format!("bitfield of {bits} bit(s) from bit {bit} does not fit in 16 bits"),
                );
                return None;
            }
            ValueType::Bitfield {
                bit: bit as u8,
                bits: bits as u8,
            }
        }
        TypeName::String => {
            let Some(length) = raw.length else {
                checker.report("length", "type string needs length, in registers");
                return None;
            };
            if !(1..=i64::from(MAX_READ_REGISTERS)).contains(&length) {
                checker.report(
                    "length",
                    format!("length {length} is outside 1 to {MAX_READ_REGISTERS} registers"),
                );
                return None;
            }
            ValueType::String {
                length: length as u16,
            }
        }
    };
    Some(value_type)
}

fn check_factor(
    key: &str,
    value: Option<f64>,
    default: f64,
    value_type: ValueType,
    checker: &mut PointChecker<'_>,
) -> f64 {
    let Some(value) = value else {
        return default;
    };
    if !value_type.is_scalable() {
        checker.report(
            key,
            format!("{key} does not apply to type {}", value_type.name()),
        );
        return default;
    }
    if !value.is_finite() || (key == "scale" && value == 0.0) {
        checker.report(
            key,
            format!(
                "{key} {value} must be a finite number{}",
                if key == "scale" { " other than 0" } else { "" }
            ),
        );
        return default;
    }
    value
}

fn check_range(raw: &RawPoint, value_type: ValueType, checker: &mut PointChecker<'_>) {
    for (key, value) in [("min", raw.min), ("max", raw.max)] {
        let Some(value) = value else { continue };
        if !value_type.is_scalable() {
            checker.report(
                key,
                format!("{key} does not apply to type {}", value_type.name()),
            );
        } else if !value.is_finite() {
            checker.report(key, format!("{key} {value} must be a finite number"));
        }
    }
    if let (Some(min), Some(max)) = (raw.min, raw.max) {
        if min > max {
            checker.report("max", format!("max {max} is below min {min}"));
        }
    }
    check_alarm_limits(raw, value_type, checker);
}

/// Alarm limits must be finite numbers of a numeric point, with the low one below the high
/// one. A limit outside `min`/`max` is allowed but can never be reached, so it is reported.
fn check_alarm_limits(raw: &RawPoint, value_type: ValueType, checker: &mut PointChecker<'_>) {
    for (key, value) in [("alarm_high", raw.alarm_high), ("alarm_low", raw.alarm_low)] {
        let Some(value) = value else { continue };
        if !value_type.is_scalable() {
            checker.report(
                key,
                format!("{key} does not apply to type {}", value_type.name()),
            );
            continue;
        }
        if !value.is_finite() {
            checker.report(key, format!("{key} {value} must be a finite number"));
            continue;
        }
        let outside =
            raw.min.is_some_and(|min| value < min) || raw.max.is_some_and(|max| value > max);
        if outside {
            checker.report(
                key,
                format!(
                    "{key} {value} is outside the plausible range min..max, so no reading can \
                     reach it; lower it or widen the range"
                ),
            );
        }
    }
    if let (Some(low), Some(high)) = (raw.alarm_low, raw.alarm_high) {
        if low >= high {
            checker.report(
                "alarm_high",
                format!("alarm_high {high} must be above alarm_low {low}"),
            );
        }
    }
}

fn check_writable(
    raw: &RawPoint,
    table: Table,
    value_type: ValueType,
    checker: &mut PointChecker<'_>,
) {
    if !raw.writable {
        return;
    }
    if !table.is_writable() {
        checker.report(
            "writable",
            format!(
                "{table} points are read-only; only coils and holding registers can be written"
            ),
        );
    } else if matches!(
        value_type,
        ValueType::Bitfield { .. } | ValueType::String { .. }
    ) {
        checker.report(
            "writable",
            format!(
                "{} points cannot be written; map the register as u16 to write it whole",
                value_type.name()
            ),
        );
    }
}

/// Reports points of the same table whose addresses overlap. Bitfields may share a register
/// when their bits do not overlap.
fn check_overlaps(file: &TomlFile, diags: &mut Diagnostics, points: &[(usize, Point)]) {
    let mut sorted: Vec<&(usize, Point)> = points.iter().collect();
    sorted.sort_by_key(|(index, point)| (point.table, point.address, *index));
    for (position, (index, point)) in sorted.iter().enumerate() {
        for (other_index, other) in sorted[..position].iter().rev() {
            if other.table != point.table {
                break;
            }
            if other.end() <= u32::from(point.address) {
                continue;
            }
            if bitfields_disjoint(point, other) {
                continue;
            }
            let (first, second) = if other_index < index {
                (other, point)
            } else {
                (point, other)
            };
            let reported = if other_index < index {
                *index
            } else {
                *other_index
            };
            file.report_at(
                diags,
                &["point", &reported.to_string(), "name"],
                format!(
                    "point `{}` ({} {} to {}) overlaps point `{}` ({} {} to {})",
                    second.name,
                    second.table,
                    second.address,
                    second.end() - 1,
                    first.name,
                    first.table,
                    first.address,
                    first.end() - 1
                ),
            );
        }
    }
}

fn bitfields_disjoint(a: &Point, b: &Point) -> bool {
    match (a.encoding.value_type, b.encoding.value_type) {
        (
            ValueType::Bitfield {
                bit: a_bit,
                bits: a_bits,
            },
            ValueType::Bitfield {
                bit: b_bit,
                bits: b_bits,
            },
        ) => a.address == b.address && (a_bit + a_bits <= b_bit || b_bit + b_bits <= a_bit),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<DeviceMap>, Vec<String>) {
        let mut diags = Diagnostics::default();
        let file = TomlFile::parse(Path::new("map.toml"), text.to_string(), &mut diags)
            .expect("valid TOML");
        let map = parse_map(&file, &mut diags);
        (map, diags.iter().map(|d| d.to_string()).collect())
    }

    const HEADER: &str = "[device]\nkind = \"energy-meter\"\nmanufacturer = \"M\"\nmodel = \"X\"\nasset_kind = \"meter\"\n";

    #[test]
    fn references_parse_to_table_and_address() {
        assert_eq!(parse_reference("40001"), Ok((Table::HoldingRegister, 0)));
        assert_eq!(parse_reference("30010"), Ok((Table::InputRegister, 9)));
        assert_eq!(parse_reference("00001"), Ok((Table::Coil, 0)));
        assert_eq!(parse_reference("10002"), Ok((Table::DiscreteInput, 1)));
        assert_eq!(
            parse_reference("465536"),
            Ok((Table::HoldingRegister, 65535))
        );
        assert_eq!(parse_reference("300001"), Ok((Table::InputRegister, 0)));
    }

    #[test]
    fn invalid_references_rejected() {
        for text in [
            "40000", "400000", "465537", "20001", "50001", "4001", "4000001", "4x001", "", "-4001",
        ] {
            assert!(parse_reference(text).is_err(), "{text}");
        }
    }

    #[test]
    fn valid_map_loads_points() {
        let text = format!(
            "{HEADER}
[[point]]
name = \"voltage_l1\"
metric = \"voltage\"
unit = \"V\"
reference = \"30001\"
type = \"f32\"
order = \"CDAB\"

[[point]]
name = \"setpoint\"
metric = \"setpoint\"
unit = \"degC\"
table = \"holding_register\"
address = 10
type = \"i16\"
scale = 0.1
min = -50
max = 130
writable = true

[[point]]
name = \"alarm\"
metric = \"alarm\"
unit = \"\"
table = \"holding_register\"
address = 11
type = \"bitfield\"
bit = 0

[[point]]
name = \"warning\"
metric = \"warning\"
unit = \"\"
table = \"holding_register\"
address = 11
type = \"bitfield\"
bit = 1
bits = 2
"
        );
        let (map, problems) = parse(&text);
        assert!(problems.is_empty(), "{problems:?}");
        let map = map.expect("map loads");
        assert_eq!(map.points.len(), 4);
        let voltage = map.point("voltage_l1").unwrap();
        assert_eq!((voltage.table, voltage.address), (Table::InputRegister, 0));
        assert_eq!(voltage.encoding.order, WordOrder::CDAB);
        let setpoint = map.point("setpoint").unwrap();
        assert_eq!(setpoint.encoding.scale, 0.1);
        assert_eq!((setpoint.min, setpoint.max), (Some(-50.0), Some(130.0)));
        assert!(setpoint.writable);
    }

    #[test]
    fn every_problem_reported_with_place() {
        let text = format!(
            "{HEADER}
[[point]]
name = \"a\"
metric = \"m\"
unit = \"V\"
reference = \"40001\"
table = \"input_register\"
type = \"u16\"

[[point]]
name = \"b\"
metric = \"m\"
unit = \"V\"
table = \"holding_register\"
address = 5
type = \"u16\"
order = \"CDAB\"

[[point]]
name = \"c\"
metric = \"m\"
unit = \"V\"
table = \"input_register\"
address = 0
type = \"u16\"
writable = true

[[point]]
name = \"d\"
metric = \"m\"
unit = \"V\"
table = \"holding_register\"
address = 65535
type = \"u32\"

[[point]]
name = \"e\"
metric = \"m\"
unit = \"V\"
table = \"holding_register\"
address = 6
type = \"u32\"

[[point]]
name = \"f\"
metric = \"m\"
unit = \"V\"
table = \"holding_register\"
address = 7
type = \"u16\"
colour = \"red\"

[[point]]
name = \"g\"
metric = \"m\"
unit = \"V\"
reference = \"20001\"
type = \"u16\"
"
        );
        let (map, problems) = parse(&text);
        assert!(map.is_none());
        let expect = [
            ("map.toml:12:9: point[0].table", "does not match reference"),
            (
                "map.toml:22:9: point[1].order",
                "applies only to 32- and 64-bit",
            ),
            ("map.toml:31:12: point[2].writable", "read-only"),
            ("map.toml:38:11: point[3].address", "beyond address 65535"),
            ("map.toml:56:1: point[5].colour", "unknown key"),
            ("map.toml:62:13: point[6].reference", "leading digit 2"),
            (
                "map.toml:50:8: point[5].name",
                "point `f` (holding_register 7 to 7) overlaps point `e`",
            ),
        ];
        for (place, message) in expect {
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(place) && p.contains(message)),
                "no `{place}` with `{message}` in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
    }

    #[test]
    fn type_and_table_must_agree() {
        let text = format!(
            "{HEADER}
[[point]]
name = \"run\"
metric = \"run\"
unit = \"\"
table = \"coil\"
address = 0
type = \"u16\"

[[point]]
name = \"flag\"
metric = \"flag\"
unit = \"\"
table = \"input_register\"
address = 0
type = \"bool\"

[[point]]
name = \"text\"
metric = \"text\"
unit = \"\"
table = \"input_register\"
address = 1
type = \"string\"

[[point]]
name = \"text\"
metric = \"dup\"
unit = \"\"
table = \"input_register\"
address = 40
type = \"u16\"
scale = 0
"
        );
        let (_, problems) = parse(&text);
        let joined = problems.join("\n");
        assert!(
            joined.contains("point[0].type: a coil holds one bit"),
            "{joined}"
        );
        assert!(
            joined.contains("point[1].type: type bool needs a coil"),
            "{joined}"
        );
        assert!(
            joined.contains("point[2].length: type string needs length"),
            "{joined}"
        );
        assert!(
            joined.contains("point[3].name: duplicate point name `text`"),
            "{joined}"
        );
        assert!(
            joined.contains("point[3].scale: scale 0 must be a finite number other than 0"),
            "{joined}"
        );
    }

    #[test]
    fn shipped_maps_load_with_units() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/devices");
        let mut kinds = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let mut diags = Diagnostics::default();
            let map = load_map(&path, &mut diags);
            assert!(diags.is_empty(), "{diags}");
            let map = map.unwrap();
            for point in &map.points {
                assert!(
                    !point.unit.is_empty(),
                    "{}: point {} has no unit",
                    path.display(),
                    point.name
                );
            }
            kinds.push(map.device.kind);
        }
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "circulation-pump",
                "district-heating-substation",
                "energy-meter"
            ]
        );
    }

    #[test]
    fn alarm_limits_are_checked() {
        let text = format!(
            "{HEADER}
[[point]]
name = \"temp\"
metric = \"temp\"
unit = \"degC\"
reference = \"30001\"
type = \"i16\"
min = 0.0
max = 120.0
alarm_high = 90.0
alarm_low = 5.0

[[point]]
name = \"hot\"
metric = \"hot\"
unit = \"degC\"
reference = \"30002\"
type = \"i16\"
max = 100.0
alarm_high = 150.0
alarm_low = 160.0

[[point]]
name = \"run\"
metric = \"run\"
unit = \"1\"
reference = \"10001\"
type = \"bool\"
alarm_high = 1.0
"
        );
        let (map, problems) = parse(&text);
        assert!(map.is_none());
        let joined = problems.join("\n");
        assert!(
            joined.contains("point[1].alarm_high: alarm_high 150 is outside the plausible range"),
            "{joined}"
        );
        assert!(
            joined.contains("point[1].alarm_high: alarm_high 150 must be above alarm_low 160"),
            "{joined}"
        );
        assert!(
            joined.contains("point[2].alarm_high: alarm_high does not apply to type bool"),
            "{joined}"
        );
        assert!(!joined.contains("point[0]"), "{joined}");
        let (map, problems) = parse(&text[..text.find("[[point]]\nname = \"hot\"").unwrap()]);
        assert!(problems.is_empty(), "{problems:?}");
        let point = map.unwrap().points.remove(0);
        assert_eq!(point.alarm_high, Some(90.0));
        assert_eq!(point.alarm_low, Some(5.0));
    }

    #[test]
    fn missing_tables_reported() {
        let (map, problems) = parse("colour = 1\n");
        assert!(map.is_none());
        let joined = problems.join("\n");
        assert!(joined.contains("colour: unknown key"), "{joined}");
        assert!(
            joined.contains("device: missing [device] table"),
            "{joined}"
        );
        assert!(joined.contains("point: no [[point]] tables"), "{joined}");
    }
}
