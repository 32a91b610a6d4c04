import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation

/// Options of one sync: the source, how rows map to the panel, and how to read.
public struct SyncOptions: Sendable {
    public var table: QualifiedName
    /// Passthrough mapping (no pipeline): the column holding the participant's external id.
    public var keyColumn: String
    /// Passthrough mapping: columns to carry into the record; nil = every column.
    public var columns: [String]?
    /// A pipeline's mapping, mode, start, filters, consent and validation; nil = passthrough CDF.
    public var spec: Pipeline?
    /// The state key of this sync (checkpoint, identity scope).
    public var pipeline: String
    /// Directory of the NDJSON output segments.
    public var outputDirectory: String
    /// Mode of the delivered files (segments, manifest, owner file, replay files): the ndjson sink's `file_mode`,
    /// else owner only; directories created for them get x where r is set (``PrivateFiles``).
    public var fileMode: mode_t = PrivateFiles.fileMode
    /// Rows per LMDB write transaction.
    public var batchSize = 10_000
    /// At most this many versions per `table_changes` statement; longer ranges are split.
    public var maxVersionsPerStatement: Int64 = 500
    /// At most about this many change rows per statement (estimated from the history's operation metrics).
    public var maxRowsPerStatement: Int64 = 5_000_000
    /// Force INLINE or EXTERNAL_LINKS; nil picks per statement by expected size.
    public var disposition: Statement.Disposition?
    /// Version to start from when there is no checkpoint (passthrough; pipelines use `start`).
    public var startVersion: Int64 = 0
    /// Take a snapshot at the latest version when change data for the range is gone.
    public var fallBackToSnapshot = true
    /// At most this many `DESCRIBE HISTORY` entries are read to size statements and find schema changes; a schema
    /// change older than them is still read across, by splitting the range the warehouse refuses.
    public var historyLimit: Int64 = 10_000
    /// How much lower than the rest of the engine the reading side (download and decode) is scheduled: each
    /// statement is read on a thread of its own at `nice` + this (see ``ReadingThread``); 0 reads on the caller's
    /// thread at its priority, as a replay always does (its reading is the critical path).
    public var readingNiceness: Int32 = ReadingThread.defaultNiceness

    /// A passthrough CDF sync of `table` keyed by `keyColumn`.
    public init(table: QualifiedName, keyColumn: String, columns: [String]? = nil, pipeline: String? = nil,
                outputDirectory: String) {
        self.table = table
        self.keyColumn = keyColumn
        self.columns = columns
        self.pipeline = pipeline ?? table.description
        self.outputDirectory = outputDirectory
    }

    /// A sync driven by a pipeline definition.
    public init(pipeline spec: Pipeline, outputDirectory: String? = nil) throws {
        do {
            table = try QualifiedName(parsing: spec.source)
        } catch {
            throw SyncError("source: \(error.message)", remedy: "Write the source as catalog.schema.table.")
        }
        keyColumn = spec.mapping["external_id"] ?? spec.mapping["event_id"] ?? ""
        self.spec = spec
        pipeline = spec.name
        // The name becomes a directory below .cdfsync/out: it must stay there (`../../x` must not).
        guard Pipeline.nameProblem(spec.name, maxBytes: .max) == nil,
            let defaultOutput = FilePaths.child(".cdfsync/out", spec.name)
        else {
            throw SyncError("name: \(Pipeline.nameProblem(spec.name, maxBytes: .max) ?? "is not a file name")",
                remedy: "Name the pipeline with \(Pipeline.nameCharacters).")
        }
        let sink = spec.sinks.first { $0.type == .ndjson }
        self.outputDirectory = outputDirectory ?? sink?.directory ?? defaultOutput
        do {
            fileMode = try sink?.parsedFileMode().map { mode_t($0) } ?? PrivateFiles.fileMode
        } catch {
            throw SyncError("sinks: file_mode \(error.message)", remedy: "Give an octal mode such as \"0640\".")
        }
    }

    var mapping: RowMapping { spec.map { .pipeline($0) } ?? .passthrough(keyColumn: keyColumn, columns: columns) }

    /// The columns to select: the pipeline's mapped and attribute columns, or the passthrough list.
    var selectedColumns: [String]? {
        if let spec {
            var cols: [String] = []
            for f in (spec.kind == .participants ? Pipeline.participantFields : Pipeline.eventFields) {
                if let c = spec.mapping[f], !cols.contains(c) { cols.append(c) }
            }
            for a in spec.attributes where !cols.contains(a.column) { cols.append(a.column) }
            if let c = spec.consent?.column, !cols.contains(c) { cols.append(c) }
            if let c = spec.watermark?.column, !cols.contains(c) { cols.append(c) }
            return cols
        }
        return columns.map { $0.contains(keyColumn) ? $0 : [keyColumn] + $0 }
    }
}

/// How a run reads its source.
public enum ReadMode: String, Sendable { case cdf, watermark, snapshot }

/// Replay of an already-synced range.
public struct ReplayOptions: Sendable {
    public var fromVersion: Int64
    public var toVersion: Int64?
    /// Print what would be created, updated and skipped; write nothing.
    public var dryRun = false
    /// Also write every replayed post-image to `replay-<run>-v<from>-v<to>.ndjson.zst`, applied or not.
    public var redeliver = false

    public init(fromVersion: Int64, toVersion: Int64? = nil, dryRun: Bool = false, redeliver: Bool = false) {
        self.fromVersion = fromVersion
        self.toVersion = toVersion
        self.dryRun = dryRun
        self.redeliver = redeliver
    }
}

/// One sync run (design §3): read the checkpoint, pick the mode, read what changed — `table_changes` ranges
/// pinned to the latest version, a snapshot, or watermark pages — apply it in batches, each batch in one LMDB
/// transaction with its checkpoint, then deliver the outbox and record the run.
public final class CDFSync {
    let client: StatementClient
    let store: PanelStore
    public let options: SyncOptions
    /// Progress lines ("applied 100000 changes ...").
    public var onProgress: @Sendable (String) -> Void = { _ in }
    /// The clock (watermark upper bounds, retention checks).
    public var now: @Sendable () -> Date = { Date() }
    /// Test hook: random delays on the reading and writer threads (``TimingJitter``).
    var jitter: TimingJitter?

    public init(client: StatementClient, store: PanelStore, options: SyncOptions) {
        self.client = client
        self.store = store
        self.options = options
    }

    /// Runs the sync. Always records the run, also when it fails; the error is rethrown after recording.
    public func run() throws -> SyncSummary {
        try recorded(mode: nil) { summary, checkpoint in try perform(&summary, checkpoint: checkpoint) }
    }

    /// Re-reads `[from, to]` (to: latest) and applies it under per-key monotonicity: nothing newer than what the
    /// panel holds changes. The checkpoint never moves.
    ///
    /// A range with no version to read (`fromVersion` after the latest version) is refused before the run is
    /// recorded: a usage error, which must not stand as the pipeline's last run.
    public func replay(_ replay: ReplayOptions) throws -> SyncSummary {
        // Asked once, before the record: an error here is recorded by the run below, which does not ask again.
        let asked = Result { try latestVersion() }
        if case .success(let latest) = asked, replay.fromVersion > min(replay.toVersion ?? latest, latest) {
            let range = replay.toVersion.map { "v\(replay.fromVersion)…v\($0)" } ?? "v\(replay.fromVersion) on"
            throw SyncError("nothing to replay: \(range) of \(options.table) holds no version (the latest is "
                    + "v\(latest)); no run was recorded",
                remedy: "Give --from-version \(latest) or lower (and a --to-version at or above it).")
        }
        return try recorded(mode: replay.dryRun ? .replayDryRun : .replay) { summary, checkpoint in
            if !replay.dryRun {
                try bindOutputDirectory()
                try deliver(&summary)  // repairs a killed delivery before reading, as a sync does
            }
            let latest = try asked.get()
            summary.latestVersion = latest
            // Versions of another table than the panel's would apply under the old history's per-key versions.
            try ensureSameSource(as: checkpoint, latest: latest)
            let end = min(replay.toVersion ?? latest, latest)
            // One statement per stretch without a schema change that change data cannot be read across.
            let schema = SchemaHistory(
                history: try history(limit: min(latest.saturatingSubtract(replay.fromVersion).saturatingAdd(2),
                    options.historyLimit), checkedAgainst: latest))
            summary.schemaChanges = schema.describe(from: replay.fromVersion, to: end)
            var planner = RangePlanner()
            planner.maxVersionsPerStatement = .max
            planner.maxRowsPerStatement = .max
            let ranges = planner.ranges(start: replay.fromVersion, end: end, history: [], breaks: schema.breaks)
            var redeliverFile: ReplayFile?
            if replay.redeliver && !replay.dryRun {
                try PrivateFiles.makeDirectory(options.outputDirectory,
                    mode: PrivateFiles.directoryMode(forFileMode: options.fileMode))
                redeliverFile = try ReplayFile(directory: options.outputDirectory,
                    name: "replay-\(summary.runID)-v\(replay.fromVersion)-v\(end).ndjson.zst", mode: options.fileMode)
            }
            try readRanges(ranges, summary: &summary) { range, summary in
                let writer = replay.dryRun
                    ? BatchWriter(capacity: 2) { [store, scope = options.pipeline] changes, _ in try store.evaluate(changes, scope: scope) }
                    : BatchWriter(capacity: 2) { [store, scope = options.pipeline, pipeline = options.pipeline, redeliverFile] changes, _ in
                        let o = try store.apply(changes, scope: scope, pipeline: pipeline, checkpoint: nil)
                        try redeliverFile?.append(changes, scope: scope)
                        return o
                    }
                let (sql, f) = try changesSQL(start: range.start, end: range.end, schema: schema)
                // A replay of an applied range writes (almost) nothing: its records are not split into shape and
                // values (the few rows it does write are stored as given), and its reading, the critical path, has no
                // writer's chain to yield to.
                try read(Statement(sql: sql, parameters: f.parameters, disposition: options.disposition ?? .externalLinks),
                    source: .changeFeed(versions: range.start...range.end), checkpoint: nil, writer: writer,
                    summary: &summary, part: .init(mode: .cdf, fromVersion: range.start, toVersion: range.end),
                    shaping: false, yieldingToWriter: false)
            }
            if let f = redeliverFile {
                try f.finish()
                summary.outputFiles.append(f.name)
                summary.delivered += f.lines
            }
            if !replay.dryRun { try deliver(&summary) }
        }
    }

    private func recorded(mode: RunRecord.Mode?, _ body: (inout SyncSummary, PanelStore.Checkpoint?) throws -> Void)
        throws -> SyncSummary
    {
        let started = Date()
        var summary = SyncSummary(pipeline: options.pipeline, table: options.table.description)
        if let mode { summary.mode = mode }
        summary.durability = store.environment.durable ? "commit" : "run"
        let checkpoint = try store.checkpoint(pipeline: options.pipeline)
        summary.checkpointBefore = checkpoint?.version
        summary.watermark = checkpoint?.watermark
        summary.watermarkBefore = checkpoint?.watermark
        try markInterruptedRuns()
        summary.runID = try store.appendRun(summary.json())
        do {
            try body(&summary, checkpoint)
            summary.status = .succeeded
            summary.checkpointVersion = try store.checkpoint(pipeline: options.pipeline)?.version
            summary.seconds = Date().timeIntervalSince(started)
            summary.peakResidentBytes = ProcessMemory.peakResidentBytes()
            try store.updateRun(id: summary.runID, json: summary.json())
            if !store.environment.durable { try store.environment.sync() }
            // The next run (or process) opens the store without scanning every identity key.
            store.saveFilter()
            return summary
        } catch {
            summary.status = .failed
            summary.error = "\(error)"
            // Rows read that no count places: in batches the writer had not committed when the run stopped, or the
            // row it stopped at.
            summary.counts.notApplied = max(0, summary.counts.read - summary.counts.accounted)
            let stored = (try? store.checkpoint(pipeline: options.pipeline)) ?? nil
            summary.checkpointVersion = stored?.version
            // In watermark mode, the watermark reached is the one the last applied page checkpointed.
            if summary.mode == .watermark { summary.watermark = stored?.watermark }
            summary.seconds = Date().timeIntervalSince(started)
            summary.peakResidentBytes = ProcessMemory.peakResidentBytes()
            try? store.updateRun(id: summary.runID, json: summary.json())
            if !store.environment.durable { try? store.environment.sync() }
            throw SyncFailure(summary: summary, underlying: error)
        }
    }

    /// Rewrites the records of runs left `running` by a process that is gone as `interrupted`: this process holds
    /// the state directory's writer lock, so no other process is running one. (Runs of this process are left
    /// alone; a store opened as a reader cannot tell and changes nothing.)
    private func markInterruptedRuns() throws {
        guard store.isWriter else { return }
        // Read as this process, the holder, would see them: its own runs stay `running`.
        let holder = WriterLock.Holder(pid: getpid(), process: WriterLock.processToken)
        for (id, json) in try store.runs(limit: 20) {
            // A record this build cannot read is left as it is.
            guard var record = try? RunRecord(json: json), record.effectiveStatus(holder: holder) == .interrupted,
                record.status == .running
            else { continue }
            record.runID = id
            record.markInterrupted()
            try store.updateRun(id: id, json: record.json())
        }
    }

    /// Before reading anything: the output directory must be this store's (or free), or delivery would fail only
    /// after the whole read; and changes this pipeline applies go there, whichever pipeline of the store delivers.
    private func bindOutputDirectory() throws {
        try store.checkDeliveryDirectory(options.outputDirectory, fileMode: options.fileMode)
        try store.setDeliveryDirectory(options.outputDirectory, pipeline: options.pipeline, fileMode: options.fileMode)
    }

    private var filterSQL: (sql: [String], parameters: [StatementParameter]) { Self.filterSQL(options.spec?.filters ?? []) }

    /// A pipeline's filters as WHERE conditions and the statement parameters that bind their values.
    static func filterSQL(_ filters: [Pipeline.Filter], reading: [String: ColumnRead] = [:])
        -> (sql: [String], parameters: [StatementParameter])
    {
        let f = SQL.filterConditions(filters, reading: reading)
        return (f.sql, f.parameters.map { StatementParameter(name: $0.name, value: $0.value, type: $0.type) })
    }

    // MARK: - Modes

    private func perform(_ summary: inout SyncSummary, checkpoint: PanelStore.Checkpoint?) throws {
        try bindOutputDirectory()
        // Deliver anything a crashed earlier run committed but did not write out.
        try deliver(&summary)
        let decision = try decideMode()
        let mode = decision.mode
        summary.mode = switch mode {
        case .cdf: .cdf
        case .snapshot: .snapshot
        case .watermark: .watermark
        }
        summary.modeReason = decision.reason
        if let spec = options.spec { try checkColumns(spec) }
        switch mode {
        case .cdf: try performChangeFeed(&summary, checkpoint: checkpoint)
        case .snapshot:
            let latest = try isView() ? nil : latestVersion()
            summary.latestVersion = latest
            try readSnapshot(at: latest, summary: &summary, part: .snapshot)
        case .watermark: try performWatermark(&summary, checkpoint: checkpoint)
        }
        try deliver(&summary)
        try deliverWebhooks(&summary)
    }

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

    private var tableInfoCache: (type: String?, created: String?)?

    /// The table's type and creation time from `information_schema.tables` (nils when it is not visible there).
    private func tableInfo() throws -> (type: String?, created: String?) {
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
    private func tableInfoIfAvailable() throws -> (type: String?, created: String?) {
        do {
            return try tableInfo()
        } catch let e as DatabricksError where e.category == .tableNotFound {
            return (nil, nil)
        }
    }

    /// The table's type from `information_schema.tables` (nil when it is not visible there).
    func tableType() throws -> String? { try tableInfo().type }

    /// When the source was created, recorded in this run's change-feed checkpoints (set when the run reads
    /// versions of a table).
    private var sourceCreated: String?
    /// The source's columns now, when a sync of every column reads them by name (``readColumns(_:)``).
    private var resolvedColumns: [String]?

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
    private func currentColumns() throws -> [String] {
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
    private func readColumns(_ schema: SchemaHistory) throws -> [String]? {
        if let selected = options.selectedColumns { return selected }
        guard !schema.changes.isEmpty else { return nil }
        if resolvedColumns == nil { resolvedColumns = try currentColumns() }
        return resolvedColumns
    }

    /// Every mapped column must exist in the source now; a missing one is named with the version.
    private func checkColumns(_ spec: Pipeline) throws {
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

    private func performChangeFeed(_ summary: inout SyncSummary, checkpoint stored: PanelStore.Checkpoint?) throws {
        // A view has no history to ask for the latest version of; say what to do instead of relaying the warehouse's
        // DELTA_CANNOT_DESCRIBE_VIEW_HISTORY.
        if let type = try tableInfoIfAvailable().type, Self.isView(type: type) {
            throw SyncError("\(options.table) is a \(type.lowercased().replacingOccurrences(of: "_", with: " ")): views have no "
                    + "change data feed to read",
                remedy: options.spec == nil
                    ? "Sync it with a pipeline file in watermark mode (a cursor column such as last_updated_at) or "
                        + "snapshot mode; see docs/pipelines.md."
                    : "Use mode: watermark (with a cursor column) or mode: snapshot, or mode: auto, which picks one.")
        }
        let latest = try latestVersion()
        summary.latestVersion = latest
        try ensureSameSource(as: stored, latest: latest)
        let checkpoint = stored?.version
        var next: Int64
        if let checkpoint {
            // A Delta table's versions only grow; a checkpoint past the latest means the history the checkpoint
            // belongs to is gone (the table was dropped and created again, or another table took its name). Waiting
            // for the new history to pass the checkpoint would skip its first versions, and every row of it would
            // look older than what the panel holds: refuse, and move nothing.
            guard checkpoint <= latest else {
                throw SyncError(
                    "pipeline \(options.pipeline) is checkpointed at v\(checkpoint), but the latest version of \(options.table) "
                        + "is v\(latest): the table's history restarted (it was dropped and created again, or another table "
                        + "now has this name), so its versions do not continue the checkpoint",
                    remedy: Self.restartedHistoryRemedy)
            }
            next = checkpoint.saturatingAdd(1)
        } else {
            switch options.spec?.start ?? .version(options.startVersion) {
            case .first: next = 0
            case .version(let v):
                // As Databricks refuses table_changes from a version after the latest
                // (DELTA_CDC_START_VERSION_AFTER_LATEST); latest + 1 is allowed: "from the next commit on".
                guard v <= latest.saturatingAdd(1) else {
                    let flag = options.spec == nil ? "--start-version" : "start:"
                    throw SyncError(
                        "start version v\(v) is after the latest version of \(options.table), v\(latest)",
                        remedy: "Give \(flag) \(latest) or lower (\(latest.saturatingAdd(1)) starts with the next commit), or check the table name.")
                }
                next = v
            case .latest:
                summary.warnings.append("start: latest — took a snapshot at v\(latest); change data continues from there")
                summary.mode = .snapshot
                try readSnapshot(at: latest, summary: &summary, part: .snapshot)
                return
            case .timestamp(let t):
                next = try firstVersion(atOrAfter: t, latest: latest)
            }
        }
        guard next <= latest else { return }

        // The history of the range sizes the statements (and picks INLINE or EXTERNAL_LINKS for each).
        let history = try self.history(limit: min(latest.saturatingSubtract(next).saturatingAdd(2), options.historyLimit),
            checkedAgainst: latest)
        if checkpoint != nil { try warnAboutRetention(history: history, next: next, summary: &summary) }
        var planner = RangePlanner()
        planner.maxVersionsPerStatement = options.maxVersionsPerStatement
        planner.maxRowsPerStatement = options.maxRowsPerStatement
        if let forced = options.disposition { planner.externalLinksThreshold = forced == .inline ? .max : -1 }
        // Ranges end before each schema change change data cannot be read across; mapped columns are read under
        // the names they had in each range.
        let schema = SchemaHistory(history: history)
        summary.schemaChanges = schema.describe(from: next, to: latest)
        let ranges = planner.ranges(start: next, end: latest, history: history, breaks: schema.breaks)
        try readRanges(ranges, summary: &summary) { range, summary in
            try readChanges(range, schema: schema, summary: &summary)
        } historyLost: { range, e, summary in
            guard options.fallBackToSnapshot else { return false }
            summary.warnings.append(
                "change data for v\(range.start)…v\(range.end) is unavailable (\(e.errorClass ?? e.category.name)); resynced from a snapshot at v\(latest)")
            summary.mode = .snapshot
            try readSnapshot(at: latest, summary: &summary, part: .snapshotFallback)
            return true
        }
    }

    /// Reads `ranges` in order with `body`. A range the warehouse refuses because a schema change inside it cannot
    /// be read across (one the history did not show) is split where the error says, or in half, and its parts
    /// read in order: every part is checkpointed at its own end, so nothing is skipped. `historyLost` may take over
    /// when a range's change data is gone, or cannot be read in any range (a single version refused, or a start
    /// commit whose removed files have an incompatible schema); true: stop reading ranges.
    private func readRanges(
        _ ranges: some Sequence<PlannedRange>, summary: inout SyncSummary,
        _ body: (PlannedRange, inout SyncSummary) throws -> Void,
        historyLost: (PlannedRange, DatabricksError, inout SyncSummary) throws -> Bool = { _, _, _ in false }
    ) throws {
        // Planned ranges are taken one at a time; the parts of a split range go on a stack, read first.
        var planned = ranges.makeIterator()
        var queue: [PlannedRange] = []
        while let range = queue.popLast() ?? planned.next() {
            do {
                try body(range, &summary)
            } catch let e as DatabricksError where e.isHistoryLost {
                if try historyLost(range, e, &summary) { return }
                throw e
            } catch let e as DatabricksError where e.isSchemaBreak && range.start < range.end && !e.isStartingCommitSchemaBreak {
                let at = e.schemaBreakVersion.flatMap { $0 > range.start && $0 <= range.end ? $0 : nil }
                    ?? range.start + (range.end - range.start) / 2 + (range.end - range.start) % 2
                onProgress("v\(range.start)…v\(range.end) spans a schema change (\(e.errorClass ?? "")); reading "
                    + "v\(range.start)…v\(at - 1) and v\(at)…v\(range.end) separately")
                let d = range.disposition
                queue.append(PlannedRange(start: at, end: range.end, estimatedRows: nil, disposition: d))
                queue.append(PlannedRange(start: range.start, end: at - 1, estimatedRows: nil, disposition: d))
            } catch let e as DatabricksError where e.isSchemaBreak {
                // One version, or the first commit of every range from here, that no statement can read in the
                // table's schema: its change data is as good as gone.
                if try historyLost(range, e, &summary) { return }
                throw e
            }
        }
    }

    /// Reads when the source was created (kept for this run's checkpoints) and refuses a source created at another
    /// time than the one `stored` was taken from.
    ///
    /// A table dropped and created again under the same name has a new creation time and versions from 0 again: the
    /// checkpoint's versions, and the per-key versions in the panel, belong to the old one. (Checkpoints written
    /// before the time was recorded, or a warehouse that does not show it, skip this; the version check in the
    /// change feed still catches a restart that has not caught up with the checkpoint yet.)
    private func ensureSameSource(as stored: PanelStore.Checkpoint?, latest: Int64) throws {
        let created = try tableInfoIfAvailable().created
        sourceCreated = created
        if let stored, let before = stored.sourceCreated, let created, !Self.sameInstant(before, created) {
            throw SyncError(
                "\(options.table) was created at \(created), but pipeline \(options.pipeline)'s checkpoint (v\(stored.tableVersion)) "
                    + "was taken from a table of that name created at \(before): it was dropped and created again, so its "
                    + "versions restarted and do not continue the checkpoint (latest is now v\(latest))",
                remedy: Self.restartedHistoryRemedy)
        }
    }

    /// What to do when the source's history restarted under the checkpoint (a table dropped and created again).
    static let restartedHistoryRemedy = "Sync the new table into a new state directory and a new output directory "
        + "(--state-dir, --output-dir or the sink's directory); the panel's "
        + "stored versions come from the old history, so its rows would be ignored as older. Or point the pipeline "
        + "back at the original table."

    /// Whether two timestamps as the warehouse prints them name the same instant (text compared when one does not
    /// parse).
    static func sameInstant(_ a: String, _ b: String) -> Bool {
        if let x = Timestamps.micros(a), let y = Timestamps.micros(b) { return x == y }
        return a == b
    }

    /// The first version committed at or after `timestamp`.
    private func firstVersion(atOrAfter timestamp: String, latest: Int64) throws -> Int64 {
        guard let t = Timestamps.micros(timestamp) else {
            throw SyncError("start: '\(timestamp)' is not first, latest, a version or an ISO timestamp",
                remedy: "Use e.g. start: 2026-03-01T00:00:00Z.")
        }
        let history = try self.history(limit: min(latest.saturatingAdd(1), 10_000), checkedAgainst: latest)
        let candidates = history.filter { ($0.timestamp.flatMap(Timestamps.micros) ?? .min) >= t }.map(\.version)
        guard let v = candidates.min() else {
            throw SyncError("start: no version of \(options.table) was committed at or after \(timestamp) (latest is v\(latest))",
                remedy: "Use an earlier timestamp, or start: latest.")
        }
        return v
    }

    /// Warns when the oldest version this run still has to read (`next`, the one after the checkpoint) was
    /// committed longer ago than `delta.deletedFileRetentionDuration`: a VACUUM may already have removed its change
    /// data. (The checkpoint's own age says nothing: a table that was quiet for a month and committed yesterday is
    /// not at risk.)
    private func warnAboutRetention(history: [HistoryEntry], next: Int64, summary: inout SyncSummary) throws {
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
        guard let v = try history(limit: 1).first?.version else {
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

    private func readChanges(_ range: PlannedRange, schema: SchemaHistory, summary: inout SyncSummary) throws {
        let (sql, f) = try changesSQL(start: range.start, end: range.end, schema: schema)
        onProgress("reading v\(range.start)…v\(range.end)" + (range.estimatedRows.map { " (~\($0) rows" } ?? " (size unknown")
            + ", \(range.disposition.rawValue))")
        try read(Statement(sql: sql, parameters: f.parameters, disposition: range.disposition),
            source: .changeFeed(versions: range.start...range.end),
            checkpoint: PanelStore.Checkpoint(tableVersion: range.end, sourceCreated: sourceCreated), summary: &summary,
            part: .init(mode: .cdf, fromVersion: range.start, toVersion: range.end))
    }

    /// The `table_changes` statement for `[start, end]`, reading the selected columns (and testing the filters) under
    /// the names they had at `end`.
    private func changesSQL(start: Int64, end: Int64, schema: SchemaHistory) throws
        -> (sql: String, filter: (sql: [String], parameters: [StatementParameter]))
    {
        let columns = try readColumns(schema)
        let reading = schema.reading((columns ?? []) + (options.spec?.filters ?? []).map(\.column), at: end)
        let filter = Self.filterSQL(options.spec?.filters ?? [], reading: reading)
        let sql = SQL.tableChanges(of: options.table, columns: columns, startVersion: start, endVersion: end,
            conditions: filter.sql, reading: reading)
        return (sql, filter)
    }

    /// A full read: `VERSION AS OF` the latest version for tables, a plain SELECT for views. The identity index
    /// makes it idempotent; change data continues from `version` afterwards.
    /// `part`: why (snapshot mode or `start: latest`, or change data gone), for the run's record.
    private func readSnapshot(at version: Int64?, summary: inout SyncSummary, part: RunRecord.Part.Mode) throws {
        let f = filterSQL
        let sql = SQL.snapshot(of: options.table, columns: options.selectedColumns, version: version, conditions: f.sql)
        // Views have no versions: a newer snapshot must win per key, so the run's time is the version.
        let rowVersion = version ?? Int64(now().timeIntervalSince1970 * 1_000_000)
        try read(Statement(sql: sql, parameters: f.parameters, disposition: options.disposition ?? .externalLinks),
            source: .snapshot(version: rowVersion),
            checkpoint: PanelStore.Checkpoint(tableVersion: version ?? -1, sourceCreated: sourceCreated),
            summary: &summary, part: .init(mode: part, fromVersion: version, toVersion: version))
    }

    /// Keyset pages on (cursor, external id) up to an upper bound fixed when the run starts, from the stored
    /// watermark minus the look-back window. Rows with a NULL cursor are counted and reported.
    private func performWatermark(_ summary: inout SyncSummary, checkpoint: PanelStore.Checkpoint?) throws {
        guard let spec = options.spec, let cursor = spec.watermark?.column ?? spec.mapping["last_updated"],
            let key = spec.mapping["external_id"]
        else {
            throw SyncError("watermark mode needs a cursor column and an external_id mapping",
                remedy: "Set watermark.column (or map last_updated) and map external_id.")
        }
        let config = spec.watermark ?? Pipeline.Watermark()
        let upper = Timestamps.iso(micros: Int64(now().timeIntervalSince1970 * 1_000_000))
        var from: (cursor: String, key: String)?
        if let wm = checkpoint?.watermark, let micros = Timestamps.micros(wm) {
            from = config.lookbackSeconds > 0
                ? (Timestamps.iso(micros: micros - Int64(config.lookbackSeconds) * 1_000_000), "")
                : (wm, checkpoint?.watermarkKey ?? "")
        }
        let c = SQL.quoteIdentifier(cursor)
        let k = SQL.quoteIdentifier(key)
        let f = filterSQL
        while true {
            var conds = f.sql + ["\(c) <= :wm_upper"]
            var params = f.parameters + [StatementParameter(name: "wm_upper", value: upper, type: "TIMESTAMP")]
            if let from {
                conds.append("\(c) > :wm_from OR (\(c) = :wm_from AND \(k) > :wm_key)")
                params += [StatementParameter(name: "wm_from", value: from.cursor, type: "TIMESTAMP"),
                           StatementParameter(name: "wm_key", value: from.key)]
            }
            let sql = SQL.snapshot(of: options.table, columns: options.selectedColumns, version: nil, conditions: conds)
                + " ORDER BY \(c), \(k) LIMIT \(config.pageSize)"
            var collector: ChangeCollector?
            var pageRows = 0
            try read(Statement(sql: sql, parameters: params, disposition: options.disposition ?? .inline),
                source: .watermark(cursorColumn: cursor), checkpoint: nil, summary: &summary,
                part: .init(mode: .watermark), beforeFinish: { col in
                    collector = col
                    pageRows = col.rowsSeen
                    if let last = col.lastCursor {
                        try col.flush(checkpoint: PanelStore.Checkpoint(tableVersion: -1, watermark: last.text, watermarkKey: last.key))
                    }
                })
            guard let col = collector, let last = col.lastCursor else { break }
            summary.watermark = last.text
            from = (last.text, last.key)
            if pageRows < config.pageSize { break }
        }
        // NULL cursors are never read by the pages above: count and report them.
        let nulls = CollectingSink(limit: 10_000_000)
        let outcome = try client.execute(Statement(
            sql: SQL.snapshot(of: options.table, columns: [key], version: nil, conditions: f.sql + ["\(c) IS NULL"]),
            parameters: f.parameters), sink: nulls)
        // Read, and counted: every row read is counted once in the run's record.
        summary.statementIDs.append(outcome.statementID)
        summary.bytesReceived += outcome.bytesReceived
        summary.noteRead(.init(mode: .watermark), rows: nulls.rows.count)
        summary.rowsRead += nulls.rows.count
        if !nulls.rows.isEmpty {
            summary.nullCursor += nulls.rows.count
            let sample = nulls.rows.prefix(5).compactMap { $0.first ?? nil }.joined(separator: ", ")
            summary.warnings.append("\(nulls.rows.count) rows have a NULL \(cursor) and cannot be synced by watermark (e.g. \(sample))")
        }
    }

    /// Streams one statement into a collector (this thread: download and decode) and a writer (its own thread:
    /// LMDB). On failure the writer still finishes the batches already handed to it — each is complete and
    /// carries only a checkpoint its rows justify — and the error is rethrown.
    /// `part`: what the statement reads (mode and versions), noted in the run's record with the rows read, also
    /// when the statement fails after reading some.
    private func read(_ statement: Statement, source: ChangeCollector.Source, checkpoint: PanelStore.Checkpoint?,
                      writer: BatchWriter? = nil, summary: inout SyncSummary, part: RunRecord.Part,
                      shaping: Bool = true,
                      yieldingToWriter: Bool = true,
                      beforeFinish: (ChangeCollector) throws -> Void = { _ in }) throws {
        let writer = writer ?? BatchWriter(store: store, scope: options.pipeline, pipeline: options.pipeline, jitter: jitter)
        let progress = onProgress
        writer.onApplied = { n, v in progress("applied \(n) changes" + (v.map { " (checkpoint v\($0))" } ?? "")) }
        let collector = ChangeCollector(
            source: source, mapping: options.mapping, batchSize: options.batchSize, summary: summary, writer: writer,
            store: store, scope: options.pipeline, maxInvalidRatio: options.spec?.validation.maxInvalidRatio,
            shaping: shaping)
        collector.sourceCreated = sourceCreated
        collector.jitter = jitter
        let rowsBefore = summary.rowsRead
        do {
            let outcome = try ReadingThread.run(niceness: yieldingToWriter ? options.readingNiceness : 0) {
                try client.execute(statement, sink: collector)
            }
            try beforeFinish(collector)
            try collector.finish(checkpoint: checkpoint)
            summary = collector.summary
            summary.statementIDs.append(outcome.statementID)
            summary.bytesReceived += outcome.bytesReceived
            summary.noteRead(part, rows: summary.rowsRead - rowsBefore)
        } catch {
            summary = collector.abandon()
            let rows = summary.rowsRead - rowsBefore
            if rows > 0 { summary.noteRead(part, rows: rows, complete: false) }
            throw error
        }
    }

    private func deliver(_ summary: inout SyncSummary) throws {
        // A store opened without per-commit syncs (`sync --durability run`) reaches the disk before any change
        // leaves it: delivered changes are never ahead of the state that produced them.
        if !store.environment.durable { try store.environment.sync() }
        // Also with nothing pending: the store's delivery first repairs what a killed delivery left (a committed
        // segment still under its temporary name, leftovers, a missing or stale manifest); returning early here
        // left a quiet source's output broken until new commits arrived.
        let segmentMax = options.spec?.sinks.first { $0.type == .ndjson }?.segmentMaxBytes ?? 64 << 20
        let outcome = try store.deliver(to: options.outputDirectory, segmentMaxBytes: segmentMax,
            fileMode: options.fileMode)
        if outcome.recordsDelivered > 0 { store.environment.releaseMappedPages() }
        summary.delivered += outcome.recordsDelivered
        summary.outputFiles += outcome.files
        summary.warnings += outcome.repairs.map { "delivery repaired: \($0)" }
        if !outcome.elsewhere.isEmpty {
            summary.warnings.append("delivered \(outcome.elsewhere.count) segment(s) of changes that a run of another "
                + "pipeline of this state directory applied and did not deliver, into that pipeline's directory: "
                + outcome.elsewhere.joined(separator: ", "))
        }
    }

    /// Feeds every webhook sink of the pipeline from the delivered segments (runs also when nothing new was
    /// delivered, to finish batches an earlier run could not send).
    private func deliverWebhooks(_ summary: inout SyncSummary) throws {
        let env = ProcessInfo.processInfo.environment
        for sink in options.spec?.sinks ?? [] where sink.type == .webhook {
            guard let url = sink.url else { continue }
            var token: Secret?
            if let name = sink.tokenEnv {
                guard let t = env[name] else {
                    throw SyncError("sinks: environment variable \(name) for the webhook token is not set",
                        remedy: "Export the webhook's bearer token as \(name).")
                }
                token = Secret(t)
            }
            var hook = WebhookSink(url: url, batchSize: sink.batchSize ?? 500, token: token)
            hook.transport.connectTimeout = 10
            hook.transport.requestTimeout = 60
            summary.webhookDelivered += try hook.deliver(store: store, pipeline: options.pipeline,
                segmentsDirectory: options.outputDirectory)
        }
    }
}

/// A failed run: the summary as recorded, and the cause.
public struct SyncFailure: Error, CustomStringConvertible {
    public var summary: SyncSummary
    public var underlying: any Error
    public var description: String { "\(underlying)" }
}
