import CDFSyncClient
import CDFSyncCore
import Foundation

/// One commit as `DESCRIBE HISTORY` reports it.
public struct HistoryEntry: Sendable, Equatable {
    public var version: Int64
    public var operation: String
    public var timestamp: String?
    /// `operationMetrics`, e.g. `numOutputRows`, `numTargetRowsUpdated`.
    public var metrics: [String: Int64]

    public init(version: Int64, operation: String, timestamp: String?, metrics: [String: Int64]) {
        self.version = version
        self.operation = operation
        self.timestamp = timestamp
        self.metrics = metrics
    }

    /// Change-feed rows this commit most likely produced: inserts + 2 × updates (pre- and post-image) + deletes,
    /// from whichever metrics the operation reports. Nil when the metrics say nothing.
    public var estimatedChangeRows: Int64? {
        func m(_ k: String) -> Int64 { metrics[k] ?? 0 }
        let merge = m("numTargetRowsInserted") + 2 * m("numTargetRowsUpdated") + m("numTargetRowsDeleted")
        let update = 2 * m("numUpdatedRows") + m("numDeletedRows")
        let write = m("numOutputRows")
        let best = max(merge, update, write)
        return metrics.isEmpty ? nil : best
    }
}

/// A `table_changes` range and how to read it.
public struct PlannedRange: Sendable, Equatable {
    public var start: Int64
    public var end: Int64
    public var estimatedRows: Int64?
    public var disposition: Statement.Disposition

    public init(start: Int64, end: Int64, estimatedRows: Int64?, disposition: Statement.Disposition) {
        self.start = start
        self.end = end
        self.estimatedRows = estimatedRows
        self.disposition = disposition
    }
}

/// Splits `[start, end]` into statements bounded by versions and by expected rows, and picks INLINE for small
/// ranges and EXTERNAL_LINKS for large ones (INLINE results are capped at 25 MiB).
public struct RangePlanner: Sendable {
    public var maxVersionsPerStatement: Int64 = 500
    public var maxRowsPerStatement: Int64 = 5_000_000
    /// Expected rows above which EXTERNAL_LINKS is used.
    public var externalLinksThreshold: Int64 = 20_000

    public init() {}

    public func plan(start: Int64, end: Int64, history: [HistoryEntry]) -> [PlannedRange] {
        let rowsByVersion = Dictionary(history.map { ($0.version, $0.estimatedChangeRows) }, uniquingKeysWith: { a, _ in a })
        var ranges: [PlannedRange] = []
        var s = start
        while s <= end {
            var e = s
            var rows: Int64? = rowsByVersion[s] ?? nil
            while e < end, e - s + 1 < maxVersionsPerStatement {
                let next = rowsByVersion[e + 1] ?? nil
                if let r = rows, let n = next, r + n > maxRowsPerStatement { break }
                rows = (rows == nil && next == nil) ? nil : (rows ?? 0) + (next ?? 0)
                e += 1
            }
            let disposition: Statement.Disposition = (rows ?? Int64.max) > externalLinksThreshold ? .externalLinks : .inline
            ranges.append(PlannedRange(start: s, end: e, estimatedRows: rows, disposition: disposition))
            s = e + 1
        }
        return ranges
    }

    /// Parses `DESCRIBE HISTORY` rows.
    public static func entries(from sink: CollectingSink) -> [HistoryEntry] {
        sink.records.compactMap { r in
            guard let v = (r["version"] ?? nil).flatMap({ Int64($0) }) else { return nil }
            var metrics: [String: Int64] = [:]
            if let text = r["operationmetrics"] ?? nil, let data = text.data(using: .utf8),
                let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            {
                for (k, val) in obj {
                    if let s = val as? String, let n = Int64(s) { metrics[k] = n } else if let n = val as? Int { metrics[k] = Int64(n) }
                }
            }
            return HistoryEntry(version: v, operation: (r["operation"] ?? nil) ?? "", timestamp: r["timestamp"] ?? nil, metrics: metrics)
        }
    }
}
