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

    /// `DESCRIBE HISTORY` rows (column names lower-cased) as entries; a row whose `version` is not a number is left
    /// out (the listing then has a gap, which ``listingProblem(_:latest:)`` names).
    public static func entries(records: [[String: String?]]) -> [HistoryEntry] {
        records.compactMap { r in
            guard let v = (r["version"] ?? nil).flatMap({ Int64($0) }) else { return nil }
            var metrics: [String: Int64] = [:]
            for (k, val) in jsonObject(r["operationmetrics"] ?? nil) {
                if let s = val as? String, let n = Int64(s) {
                    metrics[k] = n
                } else if let n = val as? NSNumber, let exact = Int64(exactly: n.doubleValue) {
                    metrics[k] = exact
                }
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

    /// What is wrong with a history listing (newest first) a run plans from, given the `latest` version it was
    /// pinned to; nil when nothing is. Delta numbers every commit, so the versions go down one by one, and `latest`
    /// is among them — or below them, when commits landed between the two statements. No warehouse answers
    /// otherwise (a latest version the history does not have, gaps, duplicates, negative versions).
    public static func listingProblem(_ history: [HistoryEntry], latest: Int64) -> String? {
        guard let first = history.first, let last = history.last else {
            return "reported v\(latest) as the latest version, then listed no version at all"
        }
        guard first.version >= latest else {
            return "reported v\(latest) as the latest version, but lists v\(first.version)…v\(last.version)"
        }
        for (newer, older) in zip(history, history.dropFirst()) where older.version != newer.version &- 1 {
            return "lists v\(older.version) right after v\(newer.version) (versions go down one by one)"
        }
        if last.version < 0 { return "lists v\(last.version)" }
        return nil
    }
}

extension Int64 {
    /// `self + other`, clamped to the representable range.
    public func saturatingAdd(_ other: Int64) -> Int64 {
        let (r, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : r
    }

    /// `self × other`, clamped to the representable range.
    public func saturatingMultiply(_ other: Int64) -> Int64 {
        let (r, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? ((self < 0) == (other < 0) ? .max : .min) : r
    }

    /// `self - other`, clamped to the representable range.
    public func saturatingSubtract(_ other: Int64) -> Int64 {
        let (r, overflow) = subtractingReportingOverflow(other)
        return overflow ? (other < 0 ? .max : .min) : r
    }
}
