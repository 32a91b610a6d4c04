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
    /// `operationParameters`, e.g. `oldColumnPath` and `newColumnPath` of a `RENAME COLUMN`.
    public var parameters: [String: String]

    public init(version: Int64, operation: String, timestamp: String?, metrics: [String: Int64],
                parameters: [String: String] = [:]) {
        self.version = version
        self.operation = operation
        self.timestamp = timestamp
        self.metrics = metrics
        self.parameters = parameters
    }

    /// Change-feed rows this commit most likely produced: inserts + 2 × updates (pre- and post-image) + deletes,
    /// from whichever metrics the operation reports. Nil when the metrics say nothing. The metrics come from the
    /// wire: a negative one counts as 0, and the sums saturate at `Int64.max` (an estimate, never a trap).
    public var estimatedChangeRows: Int64? {
        guard !metrics.isEmpty else { return nil }
        func m(_ k: String) -> Int64 { max(0, metrics[k] ?? 0) }
        let merge = m("numTargetRowsInserted").saturatingAdd(m("numTargetRowsUpdated").saturatingMultiply(2))
            .saturatingAdd(m("numTargetRowsDeleted"))
        let update = m("numUpdatedRows").saturatingMultiply(2).saturatingAdd(m("numDeletedRows"))
        let write = m("numOutputRows")
        return max(merge, update, write)
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

    /// - Parameter breaks: versions no range may contain after its start (schema changes change data cannot be read
    ///   across).
    public func plan(start: Int64, end: Int64, history: [HistoryEntry], breaks: Set<Int64> = []) -> [PlannedRange] {
        Array(ranges(start: start, end: end, history: history, breaks: breaks))
    }

    /// The ranges of ``plan(start:end:history:breaks:)``, made as they are taken: a range as long as the versions
    /// allow costs nothing until it is read (versions are wire numbers; `end` may be `Int64.max`).
    public func ranges(start: Int64, end: Int64, history: [HistoryEntry], breaks: Set<Int64> = [])
        -> UnfoldSequence<PlannedRange, Int64?>
    {
        let rowsByVersion = Dictionary(history.map { ($0.version, $0.estimatedChangeRows) }, uniquingKeysWith: { a, _ in a })
        let maxVersions = max(1, maxVersionsPerStatement)
        let (maxRows, threshold) = (maxRowsPerStatement, externalLinksThreshold)
        return sequence(state: start <= end ? start : nil) { next -> PlannedRange? in
            guard let s = next else { return nil }
            var e = s
            var rows: Int64? = rowsByVersion[s] ?? nil
            while e < end, e - s < maxVersions - 1, !breaks.contains(e + 1) {
                let more = rowsByVersion[e + 1] ?? nil
                if let r = rows, let n = more, r.saturatingAdd(n) > maxRows { break }
                rows = (rows == nil && more == nil) ? nil : (rows ?? 0).saturatingAdd(more ?? 0)
                e += 1
            }
            let disposition: Statement.Disposition = (rows ?? Int64.max) > threshold ? .externalLinks : .inline
            next = e < end ? e + 1 : nil
            return PlannedRange(start: s, end: e, estimatedRows: rows, disposition: disposition)
        }
    }

    /// Parses `DESCRIBE HISTORY` rows.
    public static func entries(from sink: CollectingSink) -> [HistoryEntry] {
        sink.records.compactMap { r in
            guard let v = (r["version"] ?? nil).flatMap({ Int64($0) }) else { return nil }
            var metrics: [String: Int64] = [:]
            for (k, val) in jsonObject(r["operationmetrics"] ?? nil) {
                if let s = val as? String, let n = Int64(s) { metrics[k] = n } else if let n = val as? Int { metrics[k] = Int64(n) }
            }
            var parameters: [String: String] = [:]
            for (k, val) in jsonObject(r["operationparameters"] ?? nil) { if let s = val as? String { parameters[k] = s } }
            return HistoryEntry(version: v, operation: (r["operation"] ?? nil) ?? "", timestamp: r["timestamp"] ?? nil,
                metrics: metrics, parameters: parameters)
        }
    }

    /// A JSON object's members (a MAP column arrives as JSON text); empty when the text is not one.
    static func jsonObject(_ text: String?) -> [String: Any] {
        guard let text, let data = text.data(using: .utf8),
            let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return obj
    }
}

extension Int64 {
    /// `self + other`, clamped to the representable range.
    func saturatingAdd(_ other: Int64) -> Int64 {
        let (r, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : r
    }

    /// `self × other`, clamped to the representable range.
    func saturatingMultiply(_ other: Int64) -> Int64 {
        let (r, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? ((self < 0) == (other < 0) ? .max : .min) : r
    }

    /// `self - other`, clamped to the representable range.
    func saturatingSubtract(_ other: Int64) -> Int64 {
        let (r, overflow) = subtractingReportingOverflow(other)
        return overflow ? (other < 0 ? .max : .min) : r
    }
}
