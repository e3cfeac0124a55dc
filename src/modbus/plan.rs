//! Coalescing of a device's points into as few read requests as the protocol allows.
//!
//! Points of the same table are read together when they are contiguous or separated by at
//! most [`MAX_GAP_REGISTERS`] unused registers ([`MAX_GAP_BITS`] unused bits). The gap is kept
//! small because many devices reply "illegal data address" to a read that touches an
//! unmapped register, which would cost the whole block. A read never exceeds 125 registers or
//! 2000 bits, and a point is never split across two reads.

use crate::modbus::map::{Point, Table};

/// Unused registers that a read may span between two points.
pub const MAX_GAP_REGISTERS: u32 = 2;
/// Unused coils or discrete inputs that a read may span between two points.
pub const MAX_GAP_BITS: u32 = 16;

/// One read request and the points it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBlock {
    pub table: Table,
    /// 0-based address of the first register or bit read.
    pub start: u16,
    /// Registers or bits read.
    pub count: u16,
    /// Indices of the served points in the device map.
    pub points: Vec<usize>,
}

impl ReadBlock {
    /// Returns one past the last address read.
    pub fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }
}

/// Groups points into reads, ordered by table and address. Every point of `points` is in
/// exactly one block.
pub fn plan_reads(points: &[Point]) -> Vec<ReadBlock> {
    let indices: Vec<usize> = (0..points.len()).collect();
    plan_subset(points, &indices, true)
}

/// Plans reads for the given points only. With `coalesce` off, each register range becomes
/// its own read, and only points on the same range (such as bitfields of one register)
/// share it.
pub fn plan_subset(points: &[Point], indices: &[usize], coalesce: bool) -> Vec<ReadBlock> {
    let mut order: Vec<usize> = indices.to_vec();
    order.sort_by_key(|&i| (points[i].table, points[i].address, points[i].end()));
    let mut blocks: Vec<ReadBlock> = Vec::new();
    for index in order {
        let point = &points[index];
        if let Some(block) = blocks.last_mut() {
            if fits(block, point, coalesce) {
                let end = block.end().max(point.end());
                block.count = (end - u32::from(block.start)) as u16;
                block.points.push(index);
                continue;
            }
        }
        blocks.push(ReadBlock {
            table: point.table,
            start: point.address,
            count: point.count(),
            points: vec![index],
        });
    }
    blocks
}

fn fits(block: &ReadBlock, point: &Point, coalesce: bool) -> bool {
    if block.table != point.table {
        return false;
    }
    let start = u32::from(point.address);
    if !coalesce {
        // Only points that share the block's exact range, such as bitfields of one register.
        return start == u32::from(block.start) && point.end() <= block.end();
    }
    let gap = if point.table.is_bits() {
        MAX_GAP_BITS
    } else {
        MAX_GAP_REGISTERS
    };
    let new_end = block.end().max(point.end());
    start <= block.end() + gap
        && new_end - u32::from(block.start) <= u32::from(point.table.max_read())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::codec::{Encoding, ValueType, WordOrder};

    fn point(table: Table, address: u16, value_type: ValueType) -> Point {
        Point {
            name: format!("p{address}"),
            metric: "m".into(),
            unit: String::new(),
            table,
            address,
            encoding: Encoding::new(value_type, WordOrder::ABCD),
            min: None,
            max: None,
            alarm_high: None,
            alarm_low: None,
            writable: false,
        }
    }

    fn ranges(blocks: &[ReadBlock]) -> Vec<(Table, u16, u16)> {
        blocks.iter().map(|b| (b.table, b.start, b.count)).collect()
    }

    #[test]
    fn two_hundred_registers_become_125_and_75() {
        let points: Vec<Point> = (0..200)
            .map(|a| point(Table::HoldingRegister, a, ValueType::U16))
            .collect();
        let blocks = plan_reads(&points);
        assert_eq!(
            ranges(&blocks),
            vec![
                (Table::HoldingRegister, 0, 125),
                (Table::HoldingRegister, 125, 75)
            ]
        );
        assert_eq!(blocks[0].points.len() + blocks[1].points.len(), 200);
    }

    #[test]
    fn coils_limited_to_2000_per_read() {
        let points: Vec<Point> = (0..4500)
            .map(|a| point(Table::Coil, a, ValueType::Bool))
            .collect();
        let blocks = plan_reads(&points);
        assert_eq!(
            ranges(&blocks),
            vec![
                (Table::Coil, 0, 2000),
                (Table::Coil, 2000, 2000),
                (Table::Coil, 4000, 500)
            ]
        );
    }

    #[test]
    fn point_never_split_across_reads() {
        // 62 u32 points fill 124 registers; the next u32 would need registers 124 and 125.
        let mut points: Vec<Point> = (0..63)
            .map(|i| point(Table::InputRegister, i * 2, ValueType::U32))
            .collect();
        points.push(point(Table::InputRegister, 126, ValueType::F64));
        let blocks = plan_reads(&points);
        assert_eq!(
            ranges(&blocks),
            vec![
                (Table::InputRegister, 0, 124),
                (Table::InputRegister, 124, 6)
            ]
        );
        for block in &blocks {
            assert!(block.count <= 125);
            for &i in &block.points {
                assert!(u32::from(points[i].address) >= u32::from(block.start));
                assert!(points[i].end() <= block.end());
            }
        }
    }

    #[test]
    fn tables_and_wide_gaps_start_new_reads() {
        let points = vec![
            point(Table::HoldingRegister, 1455, ValueType::U16),
            point(Table::HoldingRegister, 1461, ValueType::U16),
            point(Table::HoldingRegister, 1466, ValueType::U32),
            point(Table::HoldingRegister, 1470, ValueType::U16),
            point(Table::InputRegister, 1471, ValueType::U16),
            point(Table::Coil, 0, ValueType::Bool),
            point(Table::Coil, 17, ValueType::Bool),
            point(Table::Coil, 35, ValueType::Bool),
        ];
        let blocks = plan_reads(&points);
        assert_eq!(
            ranges(&blocks),
            vec![
                (Table::Coil, 0, 18),
                (Table::Coil, 35, 1),
                (Table::InputRegister, 1471, 1),
                (Table::HoldingRegister, 1455, 1),
                (Table::HoldingRegister, 1461, 1),
                (Table::HoldingRegister, 1466, 5),
            ]
        );
    }

    #[test]
    fn split_plan_keeps_shared_registers_together() {
        let points = vec![
            point(Table::HoldingRegister, 0, ValueType::U16),
            point(
                Table::HoldingRegister,
                1,
                ValueType::Bitfield { bit: 0, bits: 1 },
            ),
            point(
                Table::HoldingRegister,
                1,
                ValueType::Bitfield { bit: 1, bits: 1 },
            ),
            point(Table::HoldingRegister, 2, ValueType::U32),
        ];
        let blocks = plan_subset(&points, &[0, 1, 2, 3], false);
        assert_eq!(
            ranges(&blocks),
            vec![
                (Table::HoldingRegister, 0, 1),
                (Table::HoldingRegister, 1, 1),
                (Table::HoldingRegister, 2, 2)
            ]
        );
        assert_eq!(blocks[1].points, vec![1, 2]);
    }
}
