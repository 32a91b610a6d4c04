import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// A run's record says what the run did: the versions it read, part by part, how it read each part, and counts
/// that place every row read exactly once — for every kind of run, also a failed one.
@Suite("Run records tell the truth")
struct RunRecordTests {
    static let table = "main.research.participants"

    /// One run against `sim` into `dir`, passthrough (`--table`) unless `pipeline` is given.
    func run(_ sim: RunningSimulator, _ dir: TempDir, pipeline: Pipeline? = nil, replay: ReplayOptions? = nil,
             configure: (inout SyncOptions) -> Void = { _ in }) throws -> RunRecord {
        let client = StatementClient(settings: try sim.settings())
        client.retryPolicy.baseDelay = 0.01
        client.retryPolicy.maxDelay = 0.05
        var options = try pipeline.map { try SyncOptions(pipeline: $0, outputDirectory: dir.sub("o-\($0.name)")) }
            ?? SyncOptions(table: try QualifiedName(parsing: Self.table), keyColumn: "participant_id",
                outputDirectory: dir.sub("out"))
        configure(&options)
        let sync = CDFSync(client: client, store: try PanelStore(directory: dir.sub("state")), options: options)
        return try replay.map { try sync.replay($0) } ?? sync.run()
    }

    /// The run of `body` that failed, as recorded.
    func failed(_ body: () throws -> RunRecord) throws -> RunRecord {
        do {
            let r = try body()
            Issue.record("the run should have failed: \(r.render())")
            return r
        } catch let f as SyncFailure {
            return f.summary
        }
    }

    /// The checks every record must pass: every row read counted once; the parts hold every row read and every
    /// statement; the output's count lines add up to rows read; the stored record reads back as the run's.
    func expectTruthful(_ r: RunRecord, state: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let c = r.counts
        #expect(c.read == c.accounted, "rows read \(c.read), counted \(c.accounted): \(c)", sourceLocation: sourceLocation)
        #expect(r.parts.reduce(0) { $0 + $1.rowsRead } == c.read, "\(r.parts)", sourceLocation: sourceLocation)
        // `statement_ids` lists the statements read whole; a part the run stopped in counts the one it stopped in.
        #expect(r.parts.filter(\.complete).reduce(0) { $0 + $1.statements } == r.statementIDs.count, "\(r.parts)",
            sourceLocation: sourceLocation)
        #expect(r.status == (r.error == nil ? .succeeded : .failed), sourceLocation: sourceLocation)
        #expect(r.error != nil || c.notApplied == 0, "only a failed run leaves rows unapplied",
            sourceLocation: sourceLocation)
        #expect(Self.sum(ofCountLines: (["  rows read      \(c.read)"] + r.countLines).joined(separator: "\n")) == c.read,
            "\(r.countLines)", sourceLocation: sourceLocation)
        if r.error == nil {
            #expect(Self.sum(ofCountLines: r.render()) == c.read, "\(r.render())", sourceLocation: sourceLocation)
        }
        let stored = try #require(try PanelStore(directory: state).run(id: r.runID), sourceLocation: sourceLocation)
        #expect(try RunRecord(json: stored).json() == r.json(), sourceLocation: sourceLocation)
        #expect(try RunRecord(json: stored).recordVersion == RunRecord.currentVersion, sourceLocation: sourceLocation)
    }

    /// The numbers of a run's printed count lines (`  inserted       12  …`, between `rows read` and `conflicts`,
    /// `delivered` or `time`): each row read is on one of them.
    static func sum(ofCountLines output: String) -> Int {
        let lines = output.split(separator: "\n").map(String.init)
        guard let start = lines.firstIndex(where: { $0.hasPrefix("  rows read ") }) else { return -1 }
        var sum = 0
        for line in lines[(start + 1)...] {
            let label = line.dropFirst(2).prefix(15).trimmingCharacters(in: .whitespaces)
            if ["conflicts", "delivered", "webhook", "time"].contains(label) { break }
            guard let n = Int(line.dropFirst(17).prefix { $0.isNumber }) else { return -1 }
            sum += n
        }
        return sum
    }

    /// The first line of a run's output.
    func header(_ r: RunRecord) -> String { String(r.render().prefix { $0 != "\n" }) }

    // MARK: - Every kind of run

    @Test func aChangeFeedSyncStatesTheVersionsItRead() throws {
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 37))
        let dir = TempDir()
        let first = try run(sim, dir)
        try expectTruthful(first, state: dir.sub("state"))
        #expect(first.mode == .cdf)
        #expect(first.parts == [.init(mode: .cdf, fromVersion: 0, toVersion: 6, statements: 1, rowsRead: first.rowsRead)])
        #expect(first.checkpointBefore == nil && first.fromVersion == 0 && first.toVersion == 6)

        try sim.appendCommits(from: fixturePath("demo-commits-2.json"))
        let second = try run(sim, dir) { $0.maxVersionsPerStatement = 2 }
        try expectTruthful(second, state: dir.sub("state"))
        // Two statements (v7…v8, v9), one part: the versions read, not the table's whole history.
        #expect(second.parts == [.init(mode: .cdf, fromVersion: 7, toVersion: 9, statements: 2, rowsRead: 30)])
        #expect(second.checkpointBefore == 6 && second.fromVersion == 7 && second.toVersion == 9)
        #expect(second.deletesIgnored == 2 && second.preimagesIgnored == 8)
        #expect(header(second) == "sync of \(Self.table) [cdf] versions v7…v9 (run \(second.runID))", "\(header(second))")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(second.json())) as? [String: Any])
        #expect(json["from_version"] as? Int == 7 && json["to_version"] as? Int == 9)
        #expect(json["checkpoint_before"] as? Int == 6 && json["checkpoint_version"] as? Int == 9)
    }

    @Test func aFirstSyncFromAStartVersionRecordsThatVersion() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let r = try run(sim, dir) { $0.startVersion = 4 }
        try expectTruthful(r, state: dir.sub("state"))
        #expect(r.checkpointBefore == nil && r.fromVersion == 4 && r.toVersion == 6)
        #expect(r.parts.map(\.mode) == [.cdf])
        #expect(header(r).contains("versions v4…v6"), "\(header(r))")
    }

    @Test func aSnapshotRunSaysItTookASnapshot() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let p = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML + "\nmode: snapshot")
        let r = try run(sim, dir, pipeline: p)
        try expectTruthful(r, state: dir.sub("state"))
        #expect(r.mode == .snapshot)
        #expect(r.parts.map(\.mode) == [.snapshot] && r.parts.first?.toVersion == 6)
        #expect(r.consentBlocked > 0, "the pipeline's consent rule blocks some rows: the count is in the sum")
        #expect(header(r) == "sync of \(Self.table) [snapshot] snapshot at v6 (run \(r.runID))", "\(header(r))")
    }

    @Test func startLatestIsRecordedAsTheSnapshotItTook() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let p = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML + "\nstart: latest")
        let first = try run(sim, dir, pipeline: p)
        try expectTruthful(first, state: dir.sub("state"))
        #expect(first.mode == .snapshot, "start: latest read a snapshot, not change data")
        #expect(first.parts.map(\.mode) == [.snapshot] && first.fromVersion == 6 && first.toVersion == 6)
        #expect(!header(first).contains("versions"), "\(header(first))")

        try sim.appendCommits(from: fixturePath("demo-commits-2.json"))
        let next = try run(sim, dir, pipeline: p)
        try expectTruthful(next, state: dir.sub("state"))
        #expect(next.mode == .cdf && next.checkpointBefore == 6)
        #expect(next.parts.map(\.mode) == [.cdf] && next.fromVersion == 7 && next.toVersion == 9)
    }

    @Test func aWatermarkRunCountsItsNullCursorsAsRead() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let latest = try #require(sim.sim.latestVersion(table: Self.table))
        try sim.sim.appendCommit(table: Self.table, Commit.decode(Data(#"""
            {"version": \#(latest + 1), "timestamp": "2026-04-01T10:00:00.000Z", "operation": "WRITE", "insert": [
              ["NULL-CURSOR","Test","User","n@example.com","+44 20 7946 0958","Acme","United Kingdom","London",
               "Engineer","smb","opted_in",null]]}
            """#.utf8)))
        let p = try PipelineLoader.load(yaml: """
            name: view
            connection: {warehouse_id: 8a1c2f3d4e5b6a70}
            source: main.research.opted_in_participants
            mapping: {external_id: participant_id, email: email, last_updated: last_updated_at}
            watermark: {page_size: 40}
            """)
        let first = try run(sim, dir, pipeline: p)
        try expectTruthful(first, state: dir.sub("state"))
        #expect(first.mode == .watermark && first.nullCursor == 1)
        #expect(first.parts.map(\.mode) == [.watermark] && first.fromVersion == nil && first.toVersion == nil)
        #expect(first.watermarkBefore == nil && first.watermark != nil)
        #expect(header(first).contains("rows up to \(first.watermark ?? "?")"), "\(header(first))")

        let again = try run(sim, dir, pipeline: p)
        try expectTruthful(again, state: dir.sub("state"))
        #expect(again.watermarkBefore == first.watermark)
        #expect(header(again).contains("rows after \(first.watermark ?? "?") up to"), "\(header(again))")
    }

    /// The simulator answers a vacuumed range with the table's `vacuum_error_class`: the run reads no change data and
    /// resyncs from a snapshot, and its record says so.
    @Test func aSnapshotFallbackAfterVacuumIsItsOwnPart() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        _ = try run(sim, dir)
        try sim.appendCommits(from: fixturePath("demo-commits-2.json"))
        try sim.sim.vacuum(table: Self.table, earliestRetainedVersion: 9, errorClass: "DELTA_CHANGE_DATA_FILE_NOT_FOUND")
        let r = try run(sim, dir)
        try expectTruthful(r, state: dir.sub("state"))
        #expect(r.mode == .snapshot)
        #expect(r.parts.map(\.mode) == [.snapshotFallback] && r.fromVersion == 9 && r.toVersion == 9)
        #expect(header(r).contains("snapshot at v9 (change data gone)"), "\(header(r))")
        #expect(!header(r).contains("versions"), "\(header(r))")
    }

    /// Change data read for the first versions, then gone for the next: two parts, each with its mode.
    @Test func changeDataThenASnapshotFallbackAreTwoParts() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        _ = try run(sim, dir)
        try sim.appendCommits(from: fixturePath("demo-commits-2.json"))
        var f = Fault(match: .init(statementContains: ", 8, 8)"), count: 1, kind: .sqlError,
            message: "A file referenced in the transaction log cannot be found.")
        f.errorClass = "DELTA_CHANGE_DATA_FILE_NOT_FOUND"
        f.sqlState = "42K03"
        sim.sim.addFault(f)
        let r = try run(sim, dir) { $0.maxVersionsPerStatement = 1 }
        try expectTruthful(r, state: dir.sub("state"))
        #expect(r.parts.map(\.mode) == [.cdf, .snapshotFallback])
        #expect(r.parts.first?.fromVersion == 7 && r.parts.first?.toVersion == 7 && r.parts.first?.rowsRead == 10)
        #expect(r.fromVersion == 7 && r.toVersion == 9)
        #expect(header(r).contains("version v7, then snapshot at v9 (change data gone)"), "\(header(r))")
    }

    @Test func aReplayAndItsDryRunStateTheRangeTheyRead() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        _ = try run(sim, dir)
        let before = try PanelStore(directory: dir.sub("state")).statistics()

        let dry = try run(sim, dir, replay: ReplayOptions(fromVersion: 2, toVersion: 4, dryRun: true))
        try expectTruthful(dry, state: dir.sub("state"))
        #expect(dry.mode == .replayDryRun)
        #expect(dry.parts == [.init(mode: .cdf, fromVersion: 2, toVersion: 4, statements: 1, rowsRead: dry.rowsRead)])
        #expect(dry.checkpointBefore == 6 && dry.checkpointVersion == 6)
        #expect(dry.skippedOlder > 0, "v2…v4 hold keys updated later: older than the panel")
        #expect(header(dry).contains("versions v2…v4") && header(dry).contains("only this run's audit record was written"),
            "\(header(dry))")
        let after = try PanelStore(directory: dir.sub("state")).statistics()
        #expect(after.outboxSequence == before.outboxSequence && after.participants == before.participants)

        let replay = try run(sim, dir, replay: ReplayOptions(fromVersion: 2, toVersion: 4))
        try expectTruthful(replay, state: dir.sub("state"))
        #expect(replay.mode == .replay && replay.fromVersion == 2 && replay.toVersion == 4)
        #expect(replay.counts.read == dry.counts.read && replay.skippedOlder == dry.skippedOlder)
        #expect(header(replay) == "replay of \(Self.table) [replay] versions v2…v4 (run \(replay.runID))", "\(header(replay))")
    }

    @Test func anEventsRunCountsDuplicatesInvalidRowsAndIgnoredUpdates() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        try sim.sim.addTable(try JSONDecoder().decode(Table.self, from: Data(#"""
            {"name": "main.research.events", "table_type": "MANAGED",
             "columns": [{"name": "event_id", "type": "STRING"}, {"name": "event_name", "type": "STRING"},
                         {"name": "occurred_at", "type": "TIMESTAMP"}, {"name": "participant_id", "type": "STRING"}],
             "commits": [
               {"version": 0, "timestamp": "2026-03-01T00:00:00.000Z", "operation": "CREATE TABLE",
                "set_properties": {"delta.enableChangeDataFeed": "true"}},
               {"version": 1, "timestamp": "2026-03-02T00:00:00.000Z", "operation": "WRITE", "insert": [
                 ["E1", "login", "2026-03-02T00:00:01.000Z", "P-000001"],
                 ["E1", "login", "2026-03-02T00:00:01.000Z", "P-000001"],
                 [null, "login", "2026-03-02T00:00:02.000Z", "P-000002"],
                 ["E2", "logout", "2026-03-02T00:06:00.000Z", "NOBODY"]]},
               {"version": 2, "timestamp": "2026-03-03T00:00:00.000Z", "operation": "MERGE",
                "update": [{"before": ["E2", "logout", "2026-03-02T00:06:00.000Z", "NOBODY"],
                            "after": ["E2", "logout", "2026-03-02T00:07:00.000Z", "NOBODY"]}],
                "delete": [["E1", "login", "2026-03-02T00:00:01.000Z", "P-000001"]]}
             ]}
            """#.utf8)))
        let events = try PipelineLoader.load(yaml: """
            name: activity
            connection: {warehouse_id: 8a1c2f3d4e5b6a70}
            source: main.research.events
            kind: events
            identity_pipeline: panel
            mapping: {event_id: event_id, name: event_name, timestamp: occurred_at, user_id: participant_id}
            validation: {required: [event_id]}
            """)
        let r = try run(sim, dir, pipeline: events)
        try expectTruthful(r, state: dir.sub("state"))
        #expect(r.inserted == 2 && r.unchanged == 1, "E1 twice: one new event, one seen before")
        #expect(r.invalid == 1 && r.eventUpdatesIgnored == 1 && r.preimagesIgnored == 1 && r.deletesIgnored == 1)
        #expect(r.rowsRead == 7)
    }

    /// A run that stops half-way: the rows it read but did not apply are counted as such, and the part it was
    /// reading is marked incomplete.
    @Test func aFailedRunCountsTheRowsItDidNotApply() throws {
        // Chunk 0 (40 rows) comes with the statement's response; every later chunk fetch is refused for good.
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 40))
        sim.sim.addFault(Fault(match: .init(method: "GET", pathPrefix: "/api/2.0/sql/statements/"), count: nil,
            kind: .status, status: 400))
        let dir = TempDir()
        let r = try failed {
            try run(sim, dir) {
                $0.batchSize = 25
                $0.disposition = .inline
            }
        }
        try expectTruthful(r, state: dir.sub("state"))
        let inPanel = try PanelStore(directory: dir.sub("state")).count()
        #expect(r.rowsRead == 40 && r.inserted == 25 && inPanel == 25, "one batch of 25 applied: \(r.counts)")
        #expect(r.counts.notApplied == 15, "the 15 rows after it were read, never applied")
        #expect(r.parts == [.init(mode: .cdf, fromVersion: 0, toVersion: 6, statements: 1, rowsRead: 40, complete: false)])
        #expect(r.toVersion == nil, "no version was read whole")
        #expect(r.render().contains("checkpoint"), "\(r.render())")
    }

    // MARK: - Through the CLI

    /// An empty replay range is a usage error: refused before a run is recorded, so the pipeline's last run is not
    /// marked failed. A dry run writes its audit record and nothing else, and says so; its count lines add up.
    @Test func anEmptyReplayIsRefusedAndADryRunWritesOnlyItsRecord() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let table = ["--table", Self.table, "--key", "participant_id"]
        let sync = try runCLI(["sync"] + table, port: sim.port, dir: dir)
        try #require(sync.status == 0, "\(sync.output)")
        /// The records `runs --json` lists (its `runs` array), each as JSON text.
        func runs() throws -> [String] {
            let r = try runCLI(["runs", "--json", "--state-dir", dir.sub("state")], env: [:])
            let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            let list = try #require(object?["runs"] as? [Any], "\(r.stdout)")
            return try list.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
        }
        func status() throws -> String { try runCLI(["status", "--state-dir", dir.sub("state")], env: [:]).stdout }
        #expect(try runs().count == 1)

        let empty = try runCLI(["replay"] + table + ["--from-version", "50"], port: sim.port, dir: dir)
        #expect(empty.status != 0)
        #expect(empty.output.contains("nothing to replay: v50 on of \(Self.table) holds no version (the latest is v6)"),
            "\(empty.output)")
        #expect(empty.output.contains("--from-version 6 or lower"), "\(empty.output)")
        #expect(try runs().count == 1, "the refused replay left a run record")
        let afterRefusal = try status()
        #expect(afterRefusal.contains("last run 1 succeeded"), "\(afterRefusal)")

        let outbox = try PanelStore(directory: dir.sub("state")).statistics().outboxSequence
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.sub("out")).sorted()
        let dry = try runCLI(["replay"] + table + ["--from-version", "1", "--to-version", "4", "--dry-run"],
            port: sim.port, dir: dir)
        #expect(dry.status == 0, "\(dry.output)")
        #expect(dry.output.contains("replay (dry run) of \(Self.table) versions v1…v4 (run 2): nothing was applied, "
            + "delivered or checkpointed; only this run's audit record was written"), "\(dry.output)")
        let record = try RunRecord(json: Array(try #require(try runs().first).utf8))
        #expect(record.mode == .replayDryRun && record.runID == 2)
        #expect(Self.sum(ofCountLines: dry.output) == record.rowsRead && record.rowsRead > 0, "\(dry.output)")
        #expect(try PanelStore(directory: dir.sub("state")).statistics().outboxSequence == outbox)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.sub("out")).sorted() == files)
        let afterDryRun = try status()
        #expect(afterDryRun.contains("last run 2 succeeded at \(record.startedAtText) (replay (dry run))"),
            "\(afterDryRun)")

        // `runs` says what each run read.
        let list = try runCLI(["runs", "--state-dir", dir.sub("state")], env: [:]).stdout
        #expect(list.contains("replay (dry run)  versions v1…v4  succeeded"), "\(list)")
        #expect(list.contains("  cdf  versions v0…v6  succeeded"), "\(list)")
        let show = try runCLI(["runs", "show", "2", "--state-dir", dir.sub("state")], env: [:]).stdout
        #expect(show.contains("parts\n  cdf  versions v1…v4: 1 statement(s), \(record.rowsRead) row(s)\n"), "\(show)")
        #expect(show.contains("from_version        1\n") && show.contains("checkpoint_before   6\n"), "\(show)")
    }
}

/// Records written by earlier builds (no `record_version`: the layout `SyncSummary.auditJSON` wrote) still read,
/// with the same key names; a `running` one is marked interrupted through the typed record.
@Suite("Run records of earlier builds")
struct EarlierRunRecordTests {
    /// An incremental sync of v7…v9 from checkpoint v6, as written by the build before `record_version`.
    static let version1 = #"""
        {"run_id":3,"pipeline":"main.research.participants","source":"main.research.participants","mode":"cdf",\#
        "started_at":"2026-12-01T10:00:00Z","seconds":1.234,"host":"h1","user":"ops","pid":4242,\#
        "process":"5f0c3c1e-0000-4000-8000-000000000001","from_version":6,"to_version":9,"latest_version":9,\#
        "checkpoint_version":9,"durability":"commit","watermark":null,"statement_ids":["s-1","s-2"],\#
        "counts":{"read":30,"inserted":12,"updated":8,"unchanged":0,"skipped_older":0,"deletes_ignored":2,\#
        "preimages_ignored":8,"invalid":0,"consent_blocked":0,"linked":0,"conflicts":0,"event_updates_ignored":0,\#
        "null_cursor":0,"delivered":20,"webhook_delivered":0},"invalid_samples":[],"bytes_received":5120,\#
        "peak_rss_bytes":31457280,"output_files":["changes-356-375.ndjson.zst"],"warnings":[],"schema_changes":[],\#
        "status":"succeeded","error":null}
        """#

    /// A replay left `running` by a killed process (its first write: `from_version` the checkpoint, nothing read
    /// yet), written before `process`, `durability` and `schema_changes` were recorded.
    static let version1Running = #"""
        {"run_id":0,"pipeline":"p","source":"main.research.participants","mode":"replay",\#
        "started_at":"2026-11-30T09:00:00Z","seconds":0.000,"host":"h1","user":"ops","pid":77,"from_version":6,\#
        "to_version":null,"latest_version":null,"checkpoint_version":null,"watermark":null,"statement_ids":[],\#
        "counts":{"read":0,"inserted":0,"updated":0,"unchanged":0,"skipped_older":0,"deletes_ignored":0,\#
        "preimages_ignored":0,"invalid":0,"consent_blocked":0,"linked":0,"conflicts":0,"event_updates_ignored":0,\#
        "null_cursor":0,"delivered":0,"webhook_delivered":0},"invalid_samples":[],"bytes_received":0,\#
        "output_files":[],"warnings":[],"status":"running","error":null}
        """#

    func keys(_ json: [UInt8]) throws -> Set<String> {
        let o = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
        let counts = (o["counts"] as? [String: Any] ?? [:]).keys.map { "counts." + $0 }
        return Set(o.keys).union(counts)
    }

    @Test func aRecordOfAnEarlierBuildReadsWithItsVersionsInTheirNewMeaning() throws {
        let r = try RunRecord(json: Array(Self.version1.utf8))
        #expect(r.recordVersion == 1)
        #expect(r.runID == 3 && r.pipeline == "main.research.participants" && r.mode == .cdf && r.status == .succeeded)
        #expect(r.processID == 4242 && r.processToken == "5f0c3c1e-0000-4000-8000-000000000001")
        #expect(r.startedAtText == "2026-12-01T10:00:00Z" && r.seconds == 1.234 && r.host == "h1" && r.user == "ops")
        // `from_version` was the checkpoint before the run: the versions read were v7…v9.
        #expect(r.checkpointBefore == 6 && r.fromVersion == 7 && r.toVersion == 9 && r.checkpointVersion == 9)
        #expect(r.parts == [.init(mode: .cdf, fromVersion: 7, toVersion: 9, statements: 2, rowsRead: 30)])
        #expect(r.inserted == 12 && r.updated == 8 && r.deletesIgnored == 2 && r.preimagesIgnored == 8 && r.delivered == 20)
        #expect(r.counts.read == r.counts.accounted)
        #expect(r.outputFiles == ["changes-356-375.ndjson.zst"] && r.peakResidentBytes == 31_457_280)

        // Written again in this build's layout: every key users saw is still there, under the same name.
        let written = try r.json()
        let missing = try keys(Array(Self.version1.utf8)).subtracting(try keys(written))
        #expect(missing.isEmpty, "keys dropped: \(missing)")
        let o = try #require(try JSONSerialization.jsonObject(with: Data(written)) as? [String: Any])
        #expect(o["record_version"] as? Int == 2 && o["from_version"] as? Int == 7 && o["checkpoint_before"] as? Int == 6)
        #expect(try RunRecord(json: written) == { var v2 = r; v2.recordVersion = 2; return v2 }())
    }

    @Test func aRunningRecordOfAnEarlierBuildIsMarkedInterruptedByTheNextRun() throws {
        let old = try RunRecord(json: Array(Self.version1Running.utf8))
        #expect(old.processToken == nil && old.durability == "commit" && old.schemaChanges.isEmpty)
        #expect(old.checkpointBefore == 6 && old.parts.isEmpty && old.fromVersion == nil)

        let sim = try RunningSimulator()
        let dir = TempDir()
        let id: UInt64
        do {
            let store = try PanelStore(directory: dir.sub("state"))
            id = try store.appendRun(Array(Self.version1Running.utf8))
        }
        // Readers show it interrupted (nobody holds the state directory), with the id it is stored under.
        let show = try runCLI(["runs", "show", "\(id)", "--state-dir", dir.sub("state")], env: [:])
        #expect(show.stdout.contains("status             interrupted\n"), "\(show.stdout)")
        #expect(show.stdout.contains("run_id             \(id)\n"), "\(show.stdout)")
        #expect(show.stdout.contains("process 77 ended before the run finished"), "\(show.stdout)")

        // The next run rewrites it so, in this build's layout, keeping everything else.
        let client = StatementClient(settings: try sim.settings())
        _ = try CDFSync(client: client, store: try PanelStore(directory: dir.sub("state")),
            options: SyncOptions(table: try QualifiedName(parsing: RunRecordTests.table), keyColumn: "participant_id",
                outputDirectory: dir.sub("out"))).run()
        let stored = try #require(try PanelStore(directory: dir.sub("state")).run(id: id))
        let rewritten = try RunRecord(json: stored)
        #expect(rewritten.recordVersion == 2 && rewritten.status == .interrupted && rewritten.runID == id)
        var expected = old
        expected.recordVersion = 2
        expected.runID = id
        expected.markInterrupted()
        #expect(rewritten == expected)
    }

    @Test func aRecordThatCannotBeReadIsNamedNotSkippedSilently() throws {
        #expect(throws: DecodingError.self) { try RunRecord(json: Array(#"{"run_id":1,"pipeline":"p"}"#.utf8)) }
        do {
            _ = try RunRecord(json: Array(#"{"run_id":1,"pipeline":"p","source":"t","mode":"sideways","status":"x"}"#.utf8))
        } catch {
            #expect(RunRecord.unreadable(error).contains("mode"), "\(RunRecord.unreadable(error))")
        }
        let dir = TempDir()
        do { _ = try PanelStore(directory: dir.sub("state")).appendRun(Array("not json".utf8)) }
        let list = try runCLI(["runs", "--state-dir", dir.sub("state")], env: [:])
        #expect(list.status == 0 && list.stdout.hasPrefix("run 1  record not readable ("), "\(list.stdout)")
        let show = try runCLI(["runs", "show", "1", "--json", "--state-dir", dir.sub("state")], env: [:])
        #expect(show.stdout == "not json\n", "printed as stored")
    }
}
