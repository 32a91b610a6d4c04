import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation
import Logging

/// How a run reads a part: a change-data range, a replayed range, a snapshot, watermark pages; every statement
/// streams through a collector (the reading thread) into a writer (its own thread).
extension CDFSync {
    func readChanges(_ range: PlannedRange, schema: SchemaHistory, summary: inout SyncSummary) throws {
        let (sql, f) = try changesSQL(start: range.start, end: range.end, schema: schema)
        let size = range.estimatedRows.map { "~\($0) rows" } ?? "size unknown"
        logger.info("reading v\(range.start)…v\(range.end) (\(size), \(range.disposition.rawValue))")
        try read(Statement(sql: sql, parameters: f.parameters, disposition: range.disposition),
            source: .changeFeed(versions: range.start...range.end),
            checkpoint: PanelStore.Checkpoint(tableVersion: range.end, sourceCreated: sourceCreated), summary: &summary,
            part: .init(mode: .cdf, fromVersion: range.start, toVersion: range.end))
    }

    /// A replayed range: applied under per-key monotonicity with no checkpoint (or evaluated and rolled back, in a
    /// dry run), every post-image also written to the redelivery file when asked.
    func readReplayRange(
        _ range: PlannedRange, schema: SchemaHistory, dryRun: Bool, redeliver: ReplayFile?, summary: inout SyncSummary
    ) throws {
        let writer = dryRun
            ? BatchWriter(capacity: 2) { [store, scope = options.pipeline] changes, _ in try store.evaluate(changes, scope: scope) }
            : BatchWriter(capacity: 2) { [store, scope = options.pipeline, pipeline = options.pipeline, redeliver,
                                          activation = activationForRun(summary)] changes, _ in
                let o = try store.apply(changes, scope: scope, pipeline: pipeline, checkpoint: nil, activation: activation)
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
    func changesSQL(start: Int64, end: Int64, schema: SchemaHistory) throws
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
    func readSnapshot(at version: Int64?, summary: inout SyncSummary, part: RunRecord.Part.Mode) throws {
        let f = filterSQL
        let sql = options.customSQL.map { SQL.customSnapshot($0, columns: options.selectedColumns, conditions: f.sql) }
            ?? SQL.snapshot(of: options.table, columns: options.selectedColumns, version: version, conditions: f.sql)
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
    func readWatermarkPage(
        _ w: WatermarkRead, after from: SyncRun.WatermarkPosition?, summary: inout SyncSummary
    ) throws -> (rows: Int, last: SyncRun.WatermarkPosition?) {
        let from = from ?? w.start
        let (c, k) = (SQL.quoteIdentifier(w.cursor), SQL.quoteIdentifier(w.key))
        let f = filterSQL
        let sql: String
        var params: [StatementParameter]
        if let custom = options.customSQL {
            // The query stands alone inside `FROM (…) AS src`; bounds, key and page size are bound parameters.
            let page = SQL.customWatermarkPage(
                custom, columns: options.selectedColumns, cursor: w.cursor, key: w.key, conditions: f.sql,
                parameters: f.parameters.map { BoundParameter(name: $0.name, value: $0.value, type: $0.type) },
                upperBound: w.upper, after: from.map { ($0.cursor, $0.key) }, pageSize: w.pageSize)
            sql = page.sql
            params = page.parameters.map { StatementParameter(name: $0.name, value: $0.value, type: $0.type) }
        } else {
            var conds = f.sql + ["\(c) <= :wm_upper"]
            params = f.parameters + [StatementParameter(name: "wm_upper", value: w.upper, type: "TIMESTAMP")]
            if let from {
                conds.append("\(c) > :wm_from OR (\(c) = :wm_from AND \(k) > :wm_key)")
                params += [StatementParameter(name: "wm_from", value: from.cursor, type: "TIMESTAMP"),
                           StatementParameter(name: "wm_key", value: from.key)]
            }
            sql = SQL.snapshot(of: options.table, columns: options.selectedColumns, version: nil, conditions: conds)
                + " ORDER BY \(c), \(k) LIMIT \(w.pageSize)"
        }
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
    func countNullCursors(_ w: WatermarkRead, summary: inout SyncSummary) throws {
        let (c, f) = (SQL.quoteIdentifier(w.cursor), filterSQL)
        let nulls = CollectingSink(limit: 10_000_000)
        let conditions = f.sql + ["\(c) IS NULL"]
        let started = Date()
        let outcome = try client.execute(Statement(
            sql: options.customSQL.map { SQL.customSnapshot($0, columns: [w.key], conditions: conditions) }
                ?? SQL.snapshot(of: options.table, columns: [w.key], version: nil, conditions: conditions),
            parameters: f.parameters), sink: nulls)
        // Read, and counted: every row read is counted once in the run's record.
        summary.statementIDs.append(outcome.statementID)
        summary.bytesReceived += outcome.bytesReceived
        summary.noteRead(.init(mode: .watermark), rows: nulls.rows.count)
        summary.rowsRead += nulls.rows.count
        // A refresh: the source has these keys, even if no page can read them.
        if let seen = refreshing?.seen {
            for row in nulls.rows {
                if let raw = row.first ?? nil { try seen.insertSourceKey(raw, scope: options.pipeline) }
            }
        }
        onEvent(.statementFinished(statementID: outcome.statementID, rows: nulls.rows.count,
            bytes: outcome.bytesReceived, seconds: Date().timeIntervalSince(started)))
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
    func read(_ statement: Statement, source: ChangeCollector.Source, checkpoint: PanelStore.Checkpoint?,
                      writer: BatchWriter? = nil, summary: inout SyncSummary, part: RunRecord.Part,
                      shaping: Bool = true,
                      yieldingToWriter: Bool = true,
                      beforeFinish: (ChangeCollector) throws -> Void = { _ in }) throws {
        let writer = writer ?? refreshing?.writer(store: store, scope: options.pipeline, activation: activationForRun(summary))
            ?? BatchWriter(store: store, scope: options.pipeline, pipeline: options.pipeline, jitter: jitter,
                activation: activationForRun(summary))
        let (log, observer, event) = (logger, progress, onEvent)
        writer.onApplied = { n, v, o in
            log.info("applied \(n) changes\(v.map { " (checkpoint v\($0))" } ?? "")")
            observer?.applied(rows: n)
            event(.batchApplied(rows: n, outcome: o, checkpointVersion: v))
        }
        let collector = ChangeCollector(
            source: source, mapping: options.mapping, batchSize: options.batchSize, summary: summary, writer: writer,
            store: store, scope: options.pipeline, maxInvalidRatio: options.spec?.validation.maxInvalidRatio,
            shaping: shaping)
        collector.sourceCreated = sourceCreated
        collector.jitter = jitter
        collector.seenKeys = refreshing?.seen
        collector.progress = progress
        let rowsBefore = summary.rowsRead
        let started = Date()
        do {
            let outcome = try ReadingThread.run(niceness: yieldingToWriter ? options.readingNiceness : 0) {
                try client.execute(statement, sink: collector)
            }
            progress?.phase(.applying, detail: nil)
            try beforeFinish(collector)
            try collector.finish(checkpoint: checkpoint)
            summary = collector.summary
            summary.statementIDs.append(outcome.statementID)
            summary.bytesReceived += outcome.bytesReceived
            summary.noteRead(part, rows: summary.rowsRead - rowsBefore)
            onEvent(.statementFinished(statementID: outcome.statementID, rows: summary.rowsRead - rowsBefore,
                bytes: outcome.bytesReceived, seconds: Date().timeIntervalSince(started)))
        } catch {
            summary = collector.abandon()
            let rows = summary.rowsRead - rowsBefore
            if rows > 0 { summary.noteRead(part, rows: rows, complete: false) }
            throw error
        }
    }
}
