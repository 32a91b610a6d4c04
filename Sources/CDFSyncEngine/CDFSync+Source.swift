import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation

/// What a run asks the warehouse about its source: the mode, the table's type, creation time, properties, columns
/// and history.
extension CDFSync {
    /// How a run reads its source, and why (for `auto`).
    public struct ModeDecision: Sendable, Equatable {
        public var mode: ReadMode
        /// What `auto` saw (`delta.enableChangeDataFeed is true`); nil for a mode the pipeline names.
        public var reason: String?

        /// `auto → cdf (delta.enableChangeDataFeed is true)`, or the mode alone.
        public var description: String { reason.map { "auto → \(mode.rawValue) (\($0))" } ?? mode.rawValue }
    }

    /// The one decision of how this sync reads its source — `sync` reads with it and `pipeline validate` prints
    /// it, so the two cannot disagree. `auto` picks change data for Delta tables with
    /// `delta.enableChangeDataFeed`, a watermark for views and tables without it when a cursor column is known, a
    /// snapshot otherwise. A sync without a pipeline reads change data (a view is refused when it reads).
    ///
    /// - Throws: `SyncError` when the pipeline's own `mode: cdf` cannot work — the source is a view, or change data
    ///   feed is not enabled on it (a snapshot in its place would be a silent change of what the pipeline asked).
    public func decideMode() throws -> ModeDecision {
        guard let spec = options.spec else { return ModeDecision(mode: .cdf) }
        let cursor = (spec.watermark?.column ?? spec.mapping["last_updated"]) != nil
        if options.customSQL != nil { return try Self.customSQLMode(spec, cursor: cursor) }
        switch spec.mode {
        case .watermark: return ModeDecision(mode: .watermark)
        case .snapshot: return ModeDecision(mode: .snapshot)
        case .cdf:
            if let type = try tableInfoIfAvailable().type, Self.isView(type: type) {
                throw SyncError("mode: cdf, but \(options.table) is a \(Self.describe(type: type)): "
                        + "views have no change data feed to read",
                    remedy: "Use mode: watermark (with a cursor column) or mode: snapshot, or mode: auto, which picks "
                        + "one.")
            }
            guard try changeDataFeedEnabled() else {
                throw SyncError("mode: cdf, but change data feed is not enabled on \(options.table) "
                        + "(delta.enableChangeDataFeed is not true)",
                    remedy: "Enable it with ALTER TABLE \(options.table.quoted) SET TBLPROPERTIES "
                        + "(delta.enableChangeDataFeed = true) — change data is recorded from then on — or use "
                        + "mode: auto or mode: snapshot.")
            }
            return ModeDecision(mode: .cdf)
        case .auto:
            let cursorNote = cursor ? "a cursor column is mapped" : "no cursor column is mapped"
            if let type = try tableInfoIfAvailable().type, Self.isView(type: type) {
                return ModeDecision(mode: cursor ? .watermark : .snapshot,
                    reason: "a \(Self.describe(type: type)) has no change data; \(cursorNote)")
            }
            if try changeDataFeedEnabled() {
                return ModeDecision(mode: .cdf, reason: "delta.enableChangeDataFeed is true")
            }
            return ModeDecision(mode: cursor ? .watermark : .snapshot,
                reason: "delta.enableChangeDataFeed is not true; \(cursorNote)")
        }
    }


    /// The table's type and creation time from `information_schema.tables` (nils when it is not visible there).
    func tableInfo() throws -> (type: String?, created: String?) {
        if let cached = tableInfoCache { return cached }
        let sink = CollectingSink()
        let t = options.table
        try client.execute(Statement(
            sql: "SELECT table_type, created FROM \(SQL.quoteIdentifier(t.catalog)).information_schema.tables WHERE lower(table_schema) = :sch AND lower(table_name) = :tbl",
            parameters: [StatementParameter(name: "sch", value: t.schema.lowercased()), StatementParameter(name: "tbl", value: t.table.lowercased())]),
            sink: sink)
        let row = sink.rows.first ?? []
        let info = (type: row.first ?? nil, created: row.count > 1 ? row[1] : nil)
        tableInfoCache = info
        return info
    }

    /// ``tableInfo()``, or nils where the catalog has no `information_schema` to ask (`hive_metastore` answers
    /// TABLE_OR_VIEW_NOT_FOUND): the checks that use it are skipped there and the sync goes on. Any other failure
    /// (a rejected request, an unreachable warehouse) fails the run as it would anywhere else.
    func tableInfoIfAvailable() throws -> (type: String?, created: String?) {
        do {
            return try tableInfo()
        } catch let e as DatabricksError where e.category == .tableNotFound {
            return (nil, nil)
        }
    }

    /// The table's type from `information_schema.tables` (nil when it is not visible there).
    func tableType() throws -> String? { try tableInfo().type }


    func isView() throws -> Bool { try tableType().map { Self.isView(type: $0) } ?? false }

    /// A `table_type` as words (`MATERIALIZED_VIEW` → `materialized view`).
    static func describe(type: String) -> String { type.lowercased().replacingOccurrences(of: "_", with: " ") }

    /// Whether an `information_schema.tables.table_type` names a view (which has no history or change data).
    static func isView(type: String) -> Bool { ["VIEW", "MATERIALIZED_VIEW"].contains(type.uppercased()) }

    /// Table properties (`SHOW TBLPROPERTIES`), lower-cased keys.
    func properties() throws -> [String: String] {
        let sink = CollectingSink()
        try client.execute(Statement(sql: "SHOW TBLPROPERTIES \(options.table.quoted)"), sink: sink)
        var d: [String: String] = [:]
        for r in sink.records { if let k = r["key"] ?? nil { d[k.lowercased()] = (r["value"] ?? nil) ?? "" } }
        return d
    }

    func changeDataFeedEnabled() throws -> Bool {
        try properties()["delta.enablechangedatafeed"]?.lowercased() == "true"
    }

    /// The source's columns now, in order (`information_schema.columns`).
    func currentColumns() throws -> [String] {
        let sink = CollectingSink()
        let t = options.table
        try client.execute(Statement(
            sql: "SELECT column_name FROM \(SQL.quoteIdentifier(t.catalog)).information_schema.columns WHERE lower(table_schema) = :sch AND lower(table_name) = :tbl ORDER BY ordinal_position",
            parameters: [StatementParameter(name: "sch", value: t.schema.lowercased()), StatementParameter(name: "tbl", value: t.table.lowercased())]),
            sink: sink)
        let columns = sink.rows.compactMap { $0.first ?? nil }
        guard !columns.isEmpty else {
            throw DatabricksError(.tableNotFound, "\(t) is not visible to this identity (no columns in information_schema)",
                remedy: "Check the source name and that the identity has USE CATALOG, USE SCHEMA and SELECT on it.")
        }
        return columns
    }

    /// The columns change data is read in: the pipeline's, or for a sync of every column (`*`) of a table whose
    /// columns were renamed, added or dropped, the columns it has now — so every record carries today's names,
    /// whichever version it was read from.
    func readColumns(_ schema: SchemaHistory) throws -> [String]? {
        if let selected = options.selectedColumns { return selected }
        guard !schema.changes.isEmpty else { return nil }
        if resolvedColumns == nil { resolvedColumns = try currentColumns() }
        return resolvedColumns
    }

    /// Every mapped column must exist in the source now; a missing one is named with the version.
    func checkColumns(_ spec: Pipeline) throws {
        let columns = try currentColumns()
        do {
            _ = try RecordMapper(pipeline: spec, columns: columns)
        } catch {
            let view = (try? isView()) == true
            let version = view ? "" : (try? latestVersion()).map { " at version \($0)" } ?? ""
            // Say what the table's history shows happened to the column: a rename names the column to map instead.
            let missing = (options.selectedColumns ?? []).filter { c in !columns.contains { SchemaHistory.same($0, c) } }
            if !view, let column = missing.first, let history = try? history(limit: options.historyLimit) {
                let exists = { (c: String) in columns.contains { SchemaHistory.same($0, c) } }
                switch SchemaHistory(history: history).fate(of: column, exists: exists) {
                case .renamed(let to, let v):
                    throw SyncError("\(error.message): column \(column) was renamed to \(to) at version \(v)",
                        remedy: "Map \(to) instead of \(column) in the pipeline; cdfsync reads the versions before the "
                            + "rename under the old name.")
                case .dropped(let v):
                    throw SyncError("\(error.message): column \(column) was dropped at version \(v)",
                        remedy: "Remove \(column) from the pipeline's mapping (or map another column), or restore it in "
                            + "the source. The checkpoint has not moved.")
                case nil:
                    break
                }
            }
            throw SyncError("\(error.message)\(version)", remedy: "Fix the mapping, or restore the column in the source.")
        }
    }

    /// What to do when the source's history restarted under the checkpoint (a table dropped and created again).
    static let restartedHistoryRemedy = "Sync the new table into a new state directory and a new output directory "
        + "(--state-dir, --output-dir or the sink's directory); the panel's "
        + "stored versions come from the old history, so its rows would be ignored as older. Or point the pipeline "
        + "back at the original table."

    /// The first version committed at or after `timestamp` (nil: none).
    func firstVersion(atOrAfter timestamp: String, latest: Int64) throws -> Int64? {
        guard let t = Timestamps.micros(timestamp) else {
            throw SyncError("start: '\(timestamp)' is not first, latest, a version or an ISO timestamp",
                remedy: "Use e.g. start: 2026-03-01T00:00:00Z.")
        }
        let history = try self.history(limit: min(latest.saturatingAdd(1), 10_000), checkedAgainst: latest)
        return history.filter { ($0.timestamp.flatMap(Timestamps.micros) ?? .min) >= t }.map(\.version).min()
    }

    /// Warns when the oldest version this run still has to read (`next`, the one after the checkpoint) was
    /// committed longer ago than `delta.deletedFileRetentionDuration`: a VACUUM may already have removed its change
    /// data. (The checkpoint's own age says nothing: a table that was quiet for a month and committed yesterday is
    /// not at risk.)
    func warnAboutRetention(history: [HistoryEntry], next: Int64, summary: inout SyncSummary) throws {
        guard let ts = history.first(where: { $0.version == next })?.timestamp.flatMap(Timestamps.micros) else { return }
        let text = try properties()["delta.deletedfileretentionduration"] ?? "interval 7 days"
        let retention = Self.seconds(ofInterval: text) ?? 7 * 86_400
        let age = now().timeIntervalSince1970 - Double(ts) / 1_000_000
        if age > retention {
            summary.warnings.append(
                "v\(next), the oldest change still to read, was committed \(Int(age / 3600)) h ago, beyond delta.deletedFileRetentionDuration (\(text)); VACUUM may have removed its change data — sync more often than that")
        }
    }

    /// Seconds of a Delta interval such as `interval 7 days` or `168 hours`.
    static func seconds(ofInterval text: String) -> Double? {
        let parts = text.lowercased().split(separator: " ").filter { $0 != "interval" }
        guard parts.count >= 2, let n = Double(parts[0]) else { return nil }
        let unit = parts[1]
        if unit.hasPrefix("week") { return n * 604_800 }
        if unit.hasPrefix("day") { return n * 86_400 }
        if unit.hasPrefix("hour") { return n * 3600 }
        if unit.hasPrefix("minute") { return n * 60 }
        if unit.hasPrefix("second") { return n }
        return nil
    }

    /// `DESCRIBE HISTORY t LIMIT 1` → the `version` of the first row.
    func latestVersion() throws -> Int64 {
        let newest = try history(limit: 1).first
        latestEntry = newest
        guard let v = newest?.version else {
            throw SyncError("DESCRIBE HISTORY \(options.table) returned no version",
                remedy: "Check that \(options.table) is a Delta table with history.")
        }
        guard v >= 0 else {
            throw Self.historyProtocolError(options.table, "reported v\(v) as the latest version")
        }
        return v
    }

    /// `DESCRIBE HISTORY t LIMIT n`, newest first.
    func history(limit: Int64) throws -> [HistoryEntry] {
        let sink = CollectingSink()
        try client.execute(Statement(sql: "DESCRIBE HISTORY \(options.table.quoted) LIMIT \(max(1, limit))"), sink: sink)
        return HistoryEntry.entries(records: sink.records)
    }

    /// ``history(limit:)`` checked against the `latest` version the run was pinned to (``checkHistory(_:latest:)``).
    func history(limit: Int64, checkedAgainst latest: Int64) throws -> [HistoryEntry] {
        let entries = try history(limit: limit)
        try Self.checkHistory(entries, latest: latest, table: options.table)
        return entries
    }

    /// A history the run plans from must agree with the latest version it was pinned to
    /// (``HistoryEntry/listingProblem(_:latest:)``): the run stops before it plans anything from one that does not.
    static func checkHistory(_ history: [HistoryEntry], latest: Int64, table: QualifiedName) throws {
        if let problem = HistoryEntry.listingProblem(history, latest: latest) {
            throw historyProtocolError(table, problem)
        }
    }

    static func historyProtocolError(_ table: QualifiedName, _ what: String) -> DatabricksError {
        DatabricksError(.protocolError, "DESCRIBE HISTORY \(table) \(what)",
            remedy: "The warehouse, or a proxy between it and cdfsync, sent a history it could not have produced; "
                + "nothing was read or checkpointed. Check for a proxy that alters responses, then run the sync again.")
    }
}
