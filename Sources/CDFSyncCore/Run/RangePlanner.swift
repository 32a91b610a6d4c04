import Foundation

/// How a statement's result comes back: in the responses (`INLINE`, capped at 25 MiB) or through presigned links
/// (`EXTERNAL_LINKS`).
public enum ResultDisposition: String, Sendable { case inline = "INLINE", externalLinks = "EXTERNAL_LINKS" }

/// A `table_changes` range and how to read it.
public struct PlannedRange: Sendable, Equatable {
    public var start: Int64
    public var end: Int64
    public var estimatedRows: Int64?
    public var disposition: ResultDisposition

    public init(start: Int64, end: Int64, estimatedRows: Int64?, disposition: ResultDisposition) {
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
            let disposition: ResultDisposition = (rows ?? Int64.max) > threshold ? .externalLinks : .inline
            next = e < end ? e + 1 : nil
            return PlannedRange(start: s, end: e, estimatedRows: rows, disposition: disposition)
        }
    }

}
