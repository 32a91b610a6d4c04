import Foundation
import NIOCore

/// One output column of a result.
struct ResultColumn: Sendable {
    var name: String
    var type: SQLType
}

/// Rows of a result, rendered on demand so that big (synthetic) results are never materialised.
protocol RowSource: Sendable {
    var count: Int { get }
    /// Appends rows `range` as JSON arrays separated by commas (`["a",null],["b","c"]`).
    func renderJSON(_ range: Range<Int>, into out: inout ByteBuffer)
    /// Appends rows `range` as CSV records (NULL as the text `null`), each ending in CRLF.
    func renderCSV(_ range: Range<Int>, into out: inout ByteBuffer)
    /// One cell; used when a generic operation (WHERE, ORDER BY) needs values.
    func value(row: Int, column: Int) -> String?
    /// A rough size of one row in bytes, for the INLINE cap.
    var estimatedBytesPerRow: Int { get }
}

extension RowSource {
    func row(_ i: Int, width: Int) -> Row { (0..<width).map { value(row: i, column: $0) } }
}

/// Rows held in memory (fixture tables, metadata queries).
struct MaterializedRows: RowSource {
    var rows: [Row]

    var count: Int { rows.count }

    func value(row: Int, column: Int) -> String? { rows[row][column] }

    func renderJSON(_ range: Range<Int>, into out: inout ByteBuffer) {
        var first = true
        for i in range {
            if !first { out.writeInteger(UInt8(ascii: ",")) }
            first = false
            out.writeInteger(UInt8(ascii: "["))
            for (k, v) in rows[i].enumerated() {
                if k > 0 { out.writeInteger(UInt8(ascii: ",")) }
                if let v { out.writeJSONString(v) } else { out.writeStaticString("null") }
            }
            out.writeInteger(UInt8(ascii: "]"))
        }
    }

    func renderCSV(_ range: Range<Int>, into out: inout ByteBuffer) {
        for i in range {
            for (k, v) in rows[i].enumerated() {
                if k > 0 { out.writeInteger(UInt8(ascii: ",")) }
                out.writeCSVField(v ?? "null")
            }
            out.writeStaticString("\r\n")
        }
    }

    var estimatedBytesPerRow: Int {
        guard !rows.isEmpty else { return 0 }
        let sample = rows.prefix(64)
        var total = 0
        for r in sample {
            for v in r { total += (v?.utf8.count ?? 4) + 3 }
        }
        return total / sample.count + 2
    }
}

/// A window `[offset, offset+count)` of another source (LIMIT/OFFSET, `row_limit`).
struct SlicedRows: RowSource {
    var base: any RowSource
    var offset: Int
    var count: Int

    func value(row: Int, column: Int) -> String? { base.value(row: offset + row, column: column) }
    func renderJSON(_ range: Range<Int>, into out: inout ByteBuffer) {
        base.renderJSON((range.lowerBound + offset)..<(range.upperBound + offset), into: &out)
    }
    func renderCSV(_ range: Range<Int>, into out: inout ByteBuffer) {
        base.renderCSV((range.lowerBound + offset)..<(range.upperBound + offset), into: &out)
    }
    var estimatedBytesPerRow: Int { base.estimatedBytesPerRow }
}

/// The outcome of a successful statement: columns plus rows (possibly none).
struct ResultSet: Sendable {
    var columns: [ResultColumn]
    var rows: any RowSource
    /// Whether `row_limit` cut the rows.
    var truncated: Bool = false

    init(columns: [ResultColumn], rows: any RowSource) {
        self.columns = columns
        self.rows = rows
    }

    init(columns: [ResultColumn], materialized: [Row]) {
        self.columns = columns
        self.rows = MaterializedRows(rows: materialized)
    }
}
