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
        try recorded(mode: nil) { summary, checkpoint in try execute(.sync, &summary, checkpoint: checkpoint) }
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
            try execute(.replay(from: replay.fromVersion, to: replay.toVersion, dryRun: replay.dryRun), &summary,
                checkpoint: checkpoint, replay: replay, latest: asked)
        }
    }

    // MARK: - Running the state machine

    /// Performs the actions of a ``SyncRun`` until it finishes: the machine decides, this executes (statements,
    /// applies, deliveries) and reports what happened.
    private func execute(
        _ kind: SyncRun.Kind, _ summary: inout SyncSummary, checkpoint stored: PanelStore.Checkpoint?,
        replay: ReplayOptions? = nil, latest asked: Result<Int64, any Error>? = nil
    ) throws {
        var settings = SyncRun.Settings()
        settings.hasPipeline = options.spec != nil
        settings.start = options.spec?.start ?? .version(options.startVersion)
        settings.startFromFlag = options.spec == nil
        settings.maxVersionsPerStatement = options.maxVersionsPerStatement
        settings.maxRowsPerStatement = options.maxRowsPerStatement
        settings.disposition = options.disposition
        settings.historyLimit = options.historyLimit
        settings.fallBackToSnapshot = options.fallBackToSnapshot
        var machine = SyncRun(
            kind: kind, settings: settings,
            checkpoint: .init(version: stored?.version, sourceCreated: stored?.sourceCreated))
        var history: [HistoryEntry] = []
        var failure: (any Error)?
        var redeliver: ReplayFile?
        var watermark: WatermarkRead?

        var action = machine.start()
        while true {
            switch action {
            case .prepareOutput:
                try bindOutputDirectory()
                // Deliver (and repair) what an earlier run committed but did not write out.
                try deliver(&summary)
                action = machine.outputPrepared()
            case .decideMode:
                let decision = try decideMode()
                summary.mode = switch decision.mode {
                case .cdf: .cdf
                case .snapshot: .snapshot
                case .watermark: .watermark
                }
                summary.modeReason = decision.reason
                action = machine.modeDecided(decision.mode)
            case .checkColumns:
                try checkColumns(options.spec!)
                action = machine.columnsChecked()
            case .describeSource:
                let info = try tableInfoIfAvailable()
                sourceCreated = info.created
                let isView = info.type.map(Self.isView(type:)) ?? false
                let latest: Int64? = if let asked { try asked.get() } else if isView { nil } else { try latestVersion() }
                summary.latestVersion = latest
                action = machine.sourceDescribed(.init(type: info.type, created: info.created, latest: latest))
            case .findVersion(let timestamp):
                action = machine.versionFound(try firstVersion(atOrAfter: timestamp, latest: machine.source!.latest!))
            case .readHistory(let limit):
                let latest = machine.source!.latest!
                history = try self.history(limit: limit, checkedAgainst: latest)
                action = machine.historyRead(history)
                if let schema = machine.schema, let first = machine.firstVersion {
                    summary.schemaChanges = schema.describe(from: first, to: min(replay?.toVersion ?? latest, latest))
                }
                if let replay, replay.redeliver, !replay.dryRun, let first = machine.firstVersion {
                    try PrivateFiles.makeDirectory(options.outputDirectory,
                        mode: PrivateFiles.directoryMode(forFileMode: options.fileMode))
                    redeliver = try ReplayFile(directory: options.outputDirectory,
                        name: "replay-\(summary.runID)-v\(first)-v\(min(replay.toVersion ?? latest, latest)).ndjson.zst",
                        mode: options.fileMode)
                }
            case .checkRetention(let oldestUnread):
                try warnAboutRetention(history: history, next: oldestUnread, summary: &summary)
                action = machine.retentionChecked()
            case .warn(let warning):
                summary.warnings.append(warning)
                action = machine.warned()
            case .read(let part, let note):
                if let note { onProgress(note) }
                if machine.mode == .snapshot, kind == .sync { summary.mode = .snapshot }
                do {
                    switch part {
                    case .changes(let range):
                        if case .replay(_, _, let dryRun) = kind {
                            try readReplayRange(range, schema: machine.schema!, dryRun: dryRun, redeliver: redeliver,
                                summary: &summary)
                        } else {
                            try readChanges(range, schema: machine.schema!, summary: &summary)
                        }
                        action = machine.partRead()
                    case .snapshot(let version, let reason):
                        let partMode: RunRecord.Part.Mode = if case .changeDataGone = reason { .snapshotFallback } else { .snapshot }
                        try readSnapshot(at: version, summary: &summary, part: partMode)
                        action = machine.partRead()
                    case .watermarkPage(let from):
                        if watermark == nil { watermark = try WatermarkRead(options: options, checkpoint: stored, now: now()) }
                        let page = try readWatermarkPage(watermark!, after: from, summary: &summary)
                        action = machine.partRead(
                            watermarkRows: page.rows, lastPosition: page.last, pageSize: watermark!.pageSize)
                    case .nullCursors:
                        try countNullCursors(watermark!, summary: &summary)
                        action = machine.partRead()
                    }
                } catch {
                    failure = error
                    action = machine.partFailed(Self.readFailure(error))
                }
            case .deliver:
                if let f = redeliver {
                    try f.finish()
                    summary.outputFiles.append(f.name)
                    summary.delivered += f.lines
                }
                try deliver(&summary)
                if kind == .sync { try deliverWebhooks(&summary) }
                action = machine.delivered()
            case .finish:
                return
            case .refuse(let refusal):
                throw refusalError(refusal, failure: failure)
            }
        }
    }

    /// What a part's error means to the run.
    static func readFailure(_ error: any Error) -> SyncRun.ReadFailure {
        guard let e = error as? DatabricksError else { return .other }
        let errorClass = e.errorClass ?? e.category.name
        if e.isHistoryLost { return .changeDataGone(errorClass: errorClass) }
        if e.isStartingCommitSchemaBreak { return .startingCommitSchema(errorClass: errorClass) }
        if e.isSchemaBreak { return .schemaChange(at: e.schemaBreakVersion, errorClass: errorClass) }
        return .other
    }

    /// The error a refusal stops the run with.
    private func refusalError(_ refusal: SyncRun.Refusal, failure: (any Error)?) -> any Error {
        switch refusal {
        case .viewHasNoChangeData(let type):
            // A view has no history to ask for the latest version of; say what to do instead of relaying the
            // warehouse's DELTA_CANNOT_DESCRIBE_VIEW_HISTORY.
            return SyncError("\(options.table) is a \(Self.describe(type: type)): views have no change data feed to read",
                remedy: options.spec == nil
                    ? "Sync it with a pipeline file in watermark mode (a cursor column such as last_updated_at) or "
                        + "snapshot mode; see docs/pipelines.md."
                    : "Use mode: watermark (with a cursor column) or mode: snapshot, or mode: auto, which picks one.")
        case .checkpointAfterLatest(let checkpoint, let latest):
            // Waiting for the new history to pass the checkpoint would skip its first versions, and every row of it
            // would look older than what the panel holds: refuse, and move nothing.
            return SyncError(
                "pipeline \(options.pipeline) is checkpointed at v\(checkpoint), but the latest version of \(options.table) "
                    + "is v\(latest): the table's history restarted (it was dropped and created again, or another table "
                    + "now has this name), so its versions do not continue the checkpoint",
                remedy: Self.restartedHistoryRemedy)
        case .sourceRecreated(let created, let before, let checkpoint, let latest):
            return SyncError(
                "\(options.table) was created at \(created), but pipeline \(options.pipeline)'s checkpoint (v\(checkpoint)) "
                    + "was taken from a table of that name created at \(before): it was dropped and created again, so its "
                    + "versions restarted and do not continue the checkpoint (latest is now v\(latest))",
                remedy: Self.restartedHistoryRemedy)
        case .startAfterLatest(let start, let latest, let fromFlag):
            return SyncError("start version v\(start) is after the latest version of \(options.table), v\(latest)",
                remedy: "Give \(fromFlag ? "--start-version" : "start:") \(latest) or lower "
                    + "(\(latest.saturatingAdd(1)) starts with the next commit), or check the table name.")
        case .noVersionAtOrAfter(let timestamp, let latest):
            return SyncError(
                "start: no version of \(options.table) was committed at or after \(timestamp) (latest is v\(latest))",
                remedy: "Use an earlier timestamp, or start: latest.")
        case .partFailed:
            return failure ?? SyncError("the run stopped", remedy: "Run it again.")
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

    /// What to do when the source's history restarted under the checkpoint (a table dropped and created again).
    static let restartedHistoryRemedy = "Sync the new table into a new state directory and a new output directory "
        + "(--state-dir, --output-dir or the sink's directory); the panel's "
        + "stored versions come from the old history, so its rows would be ignored as older. Or point the pipeline "
        + "back at the original table."

    /// The first version committed at or after `timestamp` (nil: none).
    private func firstVersion(atOrAfter timestamp: String, latest: Int64) throws -> Int64? {
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

    /// A replayed range: applied under per-key monotonicity with no checkpoint (or evaluated and rolled back, in a
    /// dry run), every post-image also written to the redelivery file when asked.
    private func readReplayRange(
        _ range: PlannedRange, schema: SchemaHistory, dryRun: Bool, redeliver: ReplayFile?, summary: inout SyncSummary
    ) throws {
        let writer = dryRun
            ? BatchWriter(capacity: 2) { [store, scope = options.pipeline] changes, _ in try store.evaluate(changes, scope: scope) }
            : BatchWriter(capacity: 2) { [store, scope = options.pipeline, pipeline = options.pipeline, redeliver] changes, _ in
                let o = try store.apply(changes, scope: scope, pipeline: pipeline, checkpoint: nil)
                try redeliver?.append(changes, scope: scope)
                return o
            }
        let (sql, f) = try changesSQL(start: range.start, end: range.end, schema: schema)
        // A replay of an applied range writes (almost) nothing: its records are not split into shape and values (the
        // few rows it does write are stored as given), and its reading, the critical path, has no writer's chain to
        // yield to.
        try read(Statement(sql: sql, parameters: f.parameters, disposition: options.disposition ?? .externalLinks),
            source: .changeFeed(versions: range.start...range.end), checkpoint: nil, writer: writer,
            summary: &summary, part: .init(mode: .cdf, fromVersion: range.start, toVersion: range.end),
            shaping: false, yieldingToWriter: false)
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

    /// The fixed parts of a watermark run: keyset pages on (cursor, external id) up to an upper bound fixed when the
    /// run starts, from the stored watermark minus the look-back window.
    struct WatermarkRead {
        let cursor: String
        let key: String
        let pageSize: Int
        /// Where the first page starts (nil: from the beginning).
        let start: SyncRun.WatermarkPosition?
        let upper: String

        init(options: SyncOptions, checkpoint: PanelStore.Checkpoint?, now: Date) throws {
            guard let spec = options.spec, let cursor = spec.watermark?.column ?? spec.mapping["last_updated"],
                let key = spec.mapping["external_id"]
            else {
                throw SyncError("watermark mode needs a cursor column and an external_id mapping",
                    remedy: "Set watermark.column (or map last_updated) and map external_id.")
            }
            let config = spec.watermark ?? Pipeline.Watermark()
            self.cursor = cursor
            self.key = key
            pageSize = config.pageSize
            upper = Timestamps.iso(micros: Int64(now.timeIntervalSince1970 * 1_000_000))
            if let wm = checkpoint?.watermark, let micros = Timestamps.micros(wm) {
                start = config.lookbackSeconds > 0
                    ? .init(cursor: Timestamps.iso(micros: micros - Int64(config.lookbackSeconds) * 1_000_000), key: "")
                    : .init(cursor: wm, key: checkpoint?.watermarkKey ?? "")
            } else {
                start = nil
            }
        }
    }

    /// Reads one watermark page after `from` (nil: the first page, from the stored watermark) and checkpoints its last
    /// row's position; returns the rows it read and that position.
    private func readWatermarkPage(
        _ w: WatermarkRead, after from: SyncRun.WatermarkPosition?, summary: inout SyncSummary
    ) throws -> (rows: Int, last: SyncRun.WatermarkPosition?) {
        let from = from ?? w.start
        let (c, k) = (SQL.quoteIdentifier(w.cursor), SQL.quoteIdentifier(w.key))
        let f = filterSQL
        var conds = f.sql + ["\(c) <= :wm_upper"]
        var params = f.parameters + [StatementParameter(name: "wm_upper", value: w.upper, type: "TIMESTAMP")]
        if let from {
            conds.append("\(c) > :wm_from OR (\(c) = :wm_from AND \(k) > :wm_key)")
            params += [StatementParameter(name: "wm_from", value: from.cursor, type: "TIMESTAMP"),
                       StatementParameter(name: "wm_key", value: from.key)]
        }
        let sql = SQL.snapshot(of: options.table, columns: options.selectedColumns, version: nil, conditions: conds)
            + " ORDER BY \(c), \(k) LIMIT \(w.pageSize)"
        var rows = 0
        var last: SyncRun.WatermarkPosition?
        try read(Statement(sql: sql, parameters: params, disposition: options.disposition ?? .inline),
            source: .watermark(cursorColumn: w.cursor), checkpoint: nil, summary: &summary,
            part: .init(mode: .watermark), beforeFinish: { col in
                rows = col.rowsSeen
                if let position = col.lastCursor {
                    last = .init(cursor: position.text, key: position.key)
                    try col.flush(checkpoint: PanelStore.Checkpoint(
                        tableVersion: -1, watermark: position.text, watermarkKey: position.key))
                }
            })
        if let last { summary.watermark = last.cursor }
        return (rows, last)
    }

    /// NULL cursors are never read by the pages: counted and reported.
    private func countNullCursors(_ w: WatermarkRead, summary: inout SyncSummary) throws {
        let (c, f) = (SQL.quoteIdentifier(w.cursor), filterSQL)
        let nulls = CollectingSink(limit: 10_000_000)
        let outcome = try client.execute(Statement(
            sql: SQL.snapshot(of: options.table, columns: [w.key], version: nil, conditions: f.sql + ["\(c) IS NULL"]),
            parameters: f.parameters), sink: nulls)
        // Read, and counted: every row read is counted once in the run's record.
        summary.statementIDs.append(outcome.statementID)
        summary.bytesReceived += outcome.bytesReceived
        summary.noteRead(.init(mode: .watermark), rows: nulls.rows.count)
        summary.rowsRead += nulls.rows.count
        if !nulls.rows.isEmpty {
            summary.nullCursor += nulls.rows.count
            let sample = nulls.rows.prefix(5).compactMap { $0.first ?? nil }.joined(separator: ", ")
            summary.warnings.append(
                "\(nulls.rows.count) rows have a NULL \(w.cursor) and cannot be synced by watermark (e.g. \(sample))")
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
