import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// Pipeline-driven syncs: the real client and simulator over loopback, real LMDB and zstd.
@Suite("Pipelines over loopback")
struct PipelineSyncTests {
    static let table = "main.research.participants"

    func pipeline(_ yaml: String) throws -> Pipeline { try PipelineLoader.load(yaml: yaml) }

    static let participantsYAML = """
        name: panel
        connection: {warehouse_id: 8a1c2f3d4e5b6a70}
        source: main.research.participants
        mapping: {external_id: participant_id, email: email, phone: phone, country: country, first_name: first_name,
                  consent_status: consent_status, last_updated: last_updated_at}
        consent: {opted_in: [opted_in]}
        validation: {required: [external_id, email], default_phone_region: GB}
        """

    func sync(_ sim: RunningSimulator, _ p: Pipeline, state: String, output: String, replay: ReplayOptions? = nil)
        throws -> SyncSummary
    {
        let store = try PanelStore(directory: state)
        let client = StatementClient(settings: try sim.settings())
        client.retryPolicy.baseDelay = 0.01
        let s = CDFSync(client: client, store: store, options: try SyncOptions(pipeline: p, outputDirectory: output))
        return try replay.map { try s.replay($0) } ?? s.run()
    }

    /// The `view` pipeline: the opted-in participants view, synced by its `last_updated_at` watermark.
    func viewPipeline(pageSize: Int) throws -> Pipeline {
        try pipeline("""
            name: view
            connection: {warehouse_id: 8a1c2f3d4e5b6a70}
            source: main.research.opted_in_participants
            mapping: {external_id: participant_id, email: email, last_updated: last_updated_at}
            watermark: {page_size: \(pageSize)}
            """)
    }

    func commit(_ sim: RunningSimulator, _ json: String, table: String = table) throws {
        try sim.sim.appendCommit(table: table, Commit.decode(Data(json.utf8)))
    }

    func row(_ id: String, email: String, consent: String, updated: String? = "2026-04-01T10:00:00.000Z",
             phone: String = "+44 20 7946 0958") -> String {
        let u = updated.map { "\"\($0)\"" } ?? "null"
        return #"["\#(id)","Test","User","\#(email)","\#(phone)","Acme","United Kingdom","London","Engineer","smb","\#(consent)",\#(u)]"#
    }

    @Test func consentGatesImportAndWithdrawalMakesNotContactable() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let p = try pipeline(Self.participantsYAML)
        let first = try sync(sim, p, state: dir.sub("s"), output: dir.sub("o"))
        #expect(first.consentBlocked > 0)
        // Every imported participant is opted in, with normalised fields.
        let panel1 = try panelContents(dir.sub("s"))
        #expect(!panel1.isEmpty)
        for (_, rec) in panel1 {
            #expect(rec["email"]??.contains("@") == true)
            let email = rec["email"] ?? nil
            #expect(email == email?.lowercased())
            if let phone = rec["phone"] ?? nil { #expect(phone.hasPrefix("+")) }
            #expect(rec["country"]??.count == 2)
        }
        let target = panel1.keys.sorted().first!
        let current = CollectingSink()
        _ = try StatementClient(settings: try sim.settings()).execute(Statement(
            sql: "SELECT * FROM main.research.participants WHERE participant_id = :id",
            parameters: [StatementParameter(name: "id", value: target)]), sink: current)
        let beforeRow = String(decoding: try JSONSerialization.data(withJSONObject: current.rows[0].map { $0 as Any? ?? NSNull() }), as: UTF8.self)
        // A new opted-out participant is not imported; an imported one that withdraws is kept, not contactable.
        let latest = sim.sim.latestVersion(table: Self.table)!
        try commit(sim, #"{"version": \#(latest + 1), "timestamp": "2026-04-01T10:00:00.000Z", "operation": "MERGE", "insert": [\#(row("NEW-OUT", email: "out@example.com", consent: "opted_out"))], "update": [{"before": \#(beforeRow), "after": \#(row(target, email: "Withdrawn@Example.com", consent: "opted_out"))}]}"#)
        let second = try sync(sim, p, state: dir.sub("s"), output: dir.sub("o"))
        #expect(second.consentBlocked == 1)
        #expect(second.updated == 1)
        let store = try PanelStore(directory: dir.sub("s"))
        #expect(try store.record(externalID: "NEW-OUT", scope: "panel") == nil)
        let kept = try #require(try store.record(externalID: target, scope: "panel"))
        let obj = try JSONSerialization.jsonObject(with: Data(kept.record)) as! [String: Any]
        #expect(obj["contactable"] as? Bool == false)
        #expect(obj["email"] as? String == "withdrawn@example.com")
    }

    @Test func invalidRowsAreCountedWithSamplesAndAboveTheRatioTheRunAborts() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let latest = sim.sim.latestVersion(table: Self.table)!
        let bad = (0..<5).map { row("BAD-\($0)", email: "not-an-email", consent: "opted_in") }.joined(separator: ",")
        try commit(sim, #"{"version": \#(latest + 1), "timestamp": "2026-04-01T10:00:00.000Z", "operation": "WRITE", "insert": [\#(bad)]}"#)
        var p = try pipeline(Self.participantsYAML)
        let ok = try sync(sim, p, state: dir.sub("a"), output: dir.sub("o"))
        #expect(ok.invalid == 5)
        #expect(ok.invalidSamples.first?.contains("not-an-email") == true)
        p.validation.maxInvalidRatio = 0.001
        #expect(throws: SyncFailure.self) { _ = try sync(sim, p, state: dir.sub("b"), output: dir.sub("o2")) }
        #expect(try PanelStore(directory: dir.sub("b")).checkpoint(pipeline: "panel") == nil)
    }

    @Test func watermarkOnAViewPagesEverythingAndReportsNullCursors() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let latest = sim.sim.latestVersion(table: Self.table)!
        try commit(sim, #"{"version": \#(latest + 1), "timestamp": "2026-04-01T10:00:00.000Z", "operation": "WRITE", "insert": [\#(row("NULL-CURSOR", email: "n@example.com", consent: "opted_in", updated: nil))]}"#)
        let p = try viewPipeline(pageSize: 40)
        let first = try sync(sim, p, state: dir.sub("s"), output: dir.sub("o"))
        #expect(first.mode == .watermark)
        #expect(first.nullCursor == 1)
        #expect(first.warnings.contains { $0.contains("NULL-CURSOR") })
        #expect(first.statementIDs.count > 3, "several pages")
        // The panel holds exactly the view's rows that have a cursor.
        let view = CollectingSink()
        _ = try StatementClient(settings: try sim.settings()).execute(
            Statement(sql: "SELECT participant_id FROM main.research.opted_in_participants WHERE last_updated_at IS NOT NULL"), sink: view)
        let expected = Set(view.rows.compactMap { $0[0] })
        // Every row with a cursor resolves to a participant (some link to another through a shared email).
        do {
            let store = try PanelStore(directory: dir.sub("s"))
            for k in expected { #expect(try store.participantID(externalID: k, scope: "view") != nil, "\(k)") }
            #expect(try store.count() == expected.count - first.linked)
        }
        let again = try sync(sim, p, state: dir.sub("s"), output: dir.sub("o"))
        #expect(again.inserted == 0 && again.updated == 0)
    }

    @Test func aWatermarkRunFailingHalfWayNamesTheWatermarkItsCheckpointReached() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let latest = sim.sim.latestVersion(table: Self.table)!
        // 120 rows with a malformed email and the latest cursor: the first full page holding them exceeds the
        // pipeline's invalid ratio and aborts the run after the pages before it were applied and checkpointed.
        let bad = (0..<120).map {
            row("BAD-\($0)", email: "not-an-email", consent: "opted_in", updated: "2026-11-30T10:00:00.000Z")
        }.joined(separator: ",")
        try commit(sim, #"{"version": \#(latest + 1), "timestamp": "2026-11-30T10:00:00.000Z", "operation": "WRITE", "insert": [\#(bad)]}"#)
        var p = try viewPipeline(pageSize: 100)
        p.validation.maxInvalidRatio = 0.001
        var caught: SyncFailure?
        do { _ = try sync(sim, p, state: dir.sub("s"), output: dir.sub("o")) } catch let f as SyncFailure { caught = f }
        let failure = try #require(caught, "the invalid rows should abort the run")
        let store = try PanelStore(directory: dir.sub("s"))
        let stored = try store.checkpoint(pipeline: "view")?.watermark
        let inPanel = try store.count()
        #expect(failure.summary.mode == .watermark)
        #expect(failure.summary.watermark == stored, "the record must name the watermark the checkpoint reached")
        #expect(stored != nil && inPanel > 0, "no page was applied before the failure: the test does not exercise a partial run")
        #expect(failure.summary.inserted == inPanel, "the failed run's record must count the participants it created")
        let expected = stored.map { "checkpoint moved from the beginning (never synced) to watermark \($0)" }
            ?? "checkpoint unchanged at the beginning (never synced)"
        #expect(failure.summary.failureState.hasPrefix(expected), "\(failure.summary.failureState)")
        #expect(stored.map { $0 < "2026-11-30" } ?? true, "the checkpoint passed the page that failed")
    }

    @Test func replayIsMonotonicDryRunWritesNothingAndTheCheckpointStays() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let p = try pipeline(Self.participantsYAML)
        _ = try sync(sim, p, state: dir.sub("s"), output: dir.sub("o"))
        let before = try panelContents(dir.sub("s"))
        let checkpoint = try PanelStore(directory: dir.sub("s")).checkpoint(pipeline: "panel")

        let dry = try sync(sim, p, state: dir.sub("s"), output: dir.sub("o"), replay: ReplayOptions(fromVersion: 0, dryRun: true))
        #expect(dry.inserted == 0 && dry.updated == 0, "everything was applied already")
        #expect(dry.unchanged + dry.skippedOlder > 0)

        // Replaying only the early versions must not move any record back to an older image.
        let real = try sync(sim, p, state: dir.sub("s"), output: dir.sub("o"), replay: ReplayOptions(fromVersion: 0, toVersion: 2, redeliver: true))
        #expect(real.inserted == 0 && real.updated == 0)
        #expect(real.outputFiles.contains { $0.hasPrefix("replay-") })
        #expect(try panelContents(dir.sub("s")) == before)
        let store = try PanelStore(directory: dir.sub("s"))
        #expect(try store.checkpoint(pipeline: "panel") == checkpoint)
        #expect(try store.pendingOutboxCount() == 0)
    }

    @Test func hostileValuesAndNamesNeverBecomeSQL() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        // A filter value full of SQL travels as a bound parameter: it matches nothing and breaks nothing.
        var p = try pipeline(Self.participantsYAML)
        p.filters = [.init(column: "country", op: .eq, value: .scalar("GB'; DROP TABLE main.research.participants; --"))]
        let s = try sync(sim, p, state: dir.sub("a"), output: dir.sub("o"))
        #expect(s.inserted == 0 && s.rowsRead == 0)
        #expect(sim.sim.latestVersion(table: Self.table) != nil, "the table is still there")
        // A hostile column name stays an identifier: it is reported as a missing column, not executed.
        var q = try pipeline(Self.participantsYAML)
        q.mapping["first_name"] = "first_name`, (SELECT 1); --"
        #expect {
            _ = try sync(sim, q, state: dir.sub("b"), output: dir.sub("o"))
        } throws: { e in "\(e)".contains("does not exist") || "\(e)".contains("is not in") }
        // A hostile source name is a table that does not exist.
        var r = try pipeline(Self.participantsYAML)
        r.source = "main.research.`participants; DROP TABLE x`"
        #expect { _ = try sync(sim, r, state: dir.sub("c"), output: dir.sub("o")) } throws: { e in
            ((e as? SyncFailure)?.underlying as? DatabricksError)?.category == .tableNotFound
        }
    }

    @Test func liveValidationChecksAStartVersionAgainstTheTablesVersions() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        func startFinding(_ start: String) throws -> ValidationFinding? {
            let p = try pipeline(Self.participantsYAML + "\nstart: \(start)\n")
            let client = StatementClient(settings: try sim.settings())
            let s = CDFSync(client: client, store: try PanelStore(directory: dir.sub("state-\(start)")),
                options: try SyncOptions(pipeline: p, outputDirectory: dir.sub("out")))
            return s.validateLive().first { $0.field == "start" }
        }
        let late = try #require(try startFinding("9"))
        #expect(!late.ok && late.message.contains("v9 is after the latest version of \(Self.table), v6"), "\(late)")
        #expect(try startFinding("6")?.ok == true)
        #expect(try startFinding("7")?.message.contains("starts with the next commit") == true)
        #expect(try startFinding("first") == nil)
        // The sync refuses what validation flagged, and moves nothing.
        #expect {
            _ = try sync(sim, try pipeline(Self.participantsYAML + "\nstart: 9\n"), state: dir.sub("s"), output: dir.sub("o"))
        } throws: { e in "\(e)".contains("Give start: 6 or lower") }
        #expect(try PanelStore(directory: dir.sub("s")).checkpoint(pipeline: "panel") == nil)
    }

    @Test func previewShowsTheBuiltQueryAndEachRowAsTheSyncMapsItWritingNothing() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let latest = sim.sim.latestVersion(table: Self.table)!
        try commit(sim, #"{"version": \#(latest + 1), "timestamp": "2026-04-01T10:00:00.000Z", "operation": "WRITE", "insert": [\#(row("PV-1", email: " Ana@Example.COM ", consent: "opted_in", phone: "+44 20 7946 0001")), \#(row("PV-2", email: "not-an-email", consent: "opted_in", phone: "+44 20 7946 0002")), \#(row("PV-3", email: "out@example.com", consent: "opted_out", phone: "+44 20 7946 0003"))]}"#)
        let p = try pipeline(Self.participantsYAML + """

            filters: [{column: participant_id, op: in, value: [PV-1, PV-2, PV-3, "x') OR 1=1 --"]}]
            """)
        let preview = try PipelinePreview.run(client: StatementClient(settings: try sim.settings()), pipeline: p, limit: 10)
        // The pipeline's own query: quoted identifiers, the filter values only as bound parameters, a LIMIT.
        #expect(preview.sql.hasPrefix("SELECT `participant_id`, `first_name`, `email`, `phone`, `country`, `consent_status`, `last_updated_at` FROM `main`.`research`.`participants` WHERE (`participant_id` IN (:f0_0, :f0_1, :f0_2, :f0_3))"), "\(preview.sql)")
        #expect(preview.sql.hasSuffix(" LIMIT 10") && !preview.sql.contains("PV-1") && !preview.sql.contains("1=1"), "\(preview.sql)")
        #expect(preview.parameters.map(\.value) == ["PV-1", "PV-2", "PV-3", "x') OR 1=1 --"])
        let byOutcome = Dictionary(uniqueKeysWithValues: preview.rows.map { r -> (String, PipelinePreview.Row) in
            switch r.outcome {
            case .participant(let id), .notOptedIn(let id): (id, r)
            case .event(let id): (id, r)
            case .invalid(let why): (why, r)
            }
        })
        #expect(preview.rows.count == 3)
        #expect(byOutcome["PV-1"]?.outcome == .participant(externalID: "PV-1"))
        #expect(byOutcome["PV-3"]?.outcome == .notOptedIn(externalID: "PV-3"))
        #expect(byOutcome.keys.contains { $0.contains("email") && $0.contains("not-an-email") }, "\(byOutcome.keys)")
        #expect(!FileManager.default.fileExists(atPath: dir.sub("s")), "a preview opens no state")

        // The previewed record is the one the sync then stores.
        _ = try sync(sim, p, state: dir.sub("s"), output: dir.sub("o"))
        let stored = try #require(try PanelStore(directory: dir.sub("s")).record(externalID: "PV-1", scope: "panel"))
        let previewed = try #require(byOutcome["PV-1"]?.record)
        #expect(try JSONSerialization.jsonObject(with: Data(stored.record)) as? NSDictionary
            == JSONSerialization.jsonObject(with: Data(previewed)) as? NSDictionary)
        #expect(String(decoding: previewed, as: UTF8.self).contains(#""email":"ana@example.com""#))
    }

    @Test func pipelineFilesExplainProblemsFieldByField() {
        #expect {
            _ = try PipelineLoader.load(yaml: """
                name: x
                connection: c
                source: nope
                mapping: {email: e, shoe_size: s}
                validation: {max_invalid_ratio: 3}
                """)
        } throws: { e in
            let t = "\(e)"
            return t.contains("source:") && t.contains("mapping.shoe_size") && t.contains("mapping.external_id")
                && t.contains("validation.max_invalid_ratio")
        }
        #expect { _ = try PipelineLoader.load(yaml: "name: x\nsource: a.b.c\nmapping: {}\n") } throws: { e in
            "\(e)".contains("connection: required field is missing")
        }
        #expect(throws: Never.self) { _ = try PipelineLoader.load(path: fixturePath("pipeline-example.yaml")) }
        // A value outside a field's choices names the field and the choices, not Swift's decoding.
        for (field, yaml, allowed) in [
            ("schedule", "schedule: weekly", "15m, hourly, daily"),
            ("mode", "mode: streaming", "auto, cdf, watermark, snapshot"),
            ("kind", "kind: people", "participants, events"),
            ("filters[0].op", "filters: [{column: country, op: equals, value: GB}]", "eq, ne, lt"),
            ("attributes[0].type", "attributes: [{column: segment, type: text}]", "string, integer, decimal"),
            ("sinks[0].type", "sinks: [{type: kafka}]", "ndjson, webhook"),
        ] {
            #expect {
                _ = try PipelineLoader.load(yaml: Self.participantsYAML + "\n" + yaml + "\n")
            } throws: { e in
                let t = "\(e)"
                return t.contains("\(field): '") && t.contains("is not allowed (use one of: \(allowed)")
                    && !t.contains("Cannot initialize")
            }
        }
    }
}

@Suite("Source names in any case")
struct SourceNameCaseTests {
    /// Unity Catalog stores names in lower case and matches them case-insensitively; the information_schema lookups
    /// (mode, creation time, columns) must too, or a pipeline naming `Main.Research.Participants` is "not visible".
    @Test func aSourceNamedInMixedCaseValidatesAndSyncs() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let p = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML.replacingOccurrences(
            of: "source: main.research.participants", with: "source: Main.Research.Participants"))
        let store = try PanelStore(directory: dir.sub("s"))
        let sync = CDFSync(client: StatementClient(settings: try sim.settings()), store: store,
            options: try SyncOptions(pipeline: p, outputDirectory: dir.sub("o")))
        let findings = try sync.validateLive()
        let failed = findings.filter { !$0.ok }
        #expect(failed.isEmpty, "\(failed)")
        let mixed = try sync.run()
        let lower = try CDFSync(client: StatementClient(settings: try sim.settings()), store: PanelStore(directory: dir.sub("l")),
            options: try SyncOptions(pipeline: try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML),
                outputDirectory: dir.sub("lo"))).run()
        #expect(mixed.mode == lower.mode && mixed.inserted == lower.inserted && mixed.inserted > 0, "\(mixed.render())")
    }
}
