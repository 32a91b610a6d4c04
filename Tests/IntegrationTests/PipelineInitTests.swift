import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// `cdfsync pipeline init` against the simulator: the real binary reads a source's columns and a sample, writes a
/// pipeline file, and `pipeline validate` (and a sync) accept it — for tables with unusual names and shapes, a view,
/// a table without change data feed and an events table.
@Suite("pipeline init: a pipeline from discovery")
struct PipelineInitTests {
    /// A table whose name needs backticks (a space and a backtick in it) and whose columns have spaces, dashes,
    /// unicode, a backtick and a `$`.
    static let oddTable = "main.research.`Panel Members 2024 ``β```"
    static let oddColumns: [(String, String)] = [
        ("Participant ID", "STRING"), ("Given Name", "STRING"), ("Family-Name", "STRING"), ("E-Mail", "STRING"),
        ("mobile", "STRING"), ("work phone", "STRING"), ("Land", "STRING"), ("Stadt", "STRING"),
        ("Opt-In Status", "STRING"), ("Updated At", "TIMESTAMP"), ("shoe`size", "INT"), ("notes $HOME", "STRING"),
        ("größe (cm)", "DECIMAL(5,1)"), ("prefs", "STRUCT<lang: STRING>"),
    ]
    /// Consent values in mixed case and spelling; rows 0, 1, 4, 6, 7 of every 8 are opted in.
    static let consentValues = ["Opted In", "opted_in", "OPTED-OUT", "Withdrawn", "yes", "maybe", "YES", " opted in "]

    static func oddRow(_ i: Int) -> [Any] {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return [
            "P-\(i)", "Ana\(i)", "Lima", " Person\(i)@Example.org ", i % 25 == 0 ? "ask at reception" : "+44 7700 9000\(two(i))",
            i % 10 == 0 ? "n/a" : "+33 1 44 55 00 \(two(i))", ["Germany", "FR", "gbr", "United Kingdom"][i % 4], "Köln",
            consentValues[i % 8], "2026-03-01T09:00:\(two(i)).000Z", "\(36 + i % 10)", "note \(i)", "17\(i % 10).5",
            "{\"lang\":\"de\"}",
        ]
    }

    /// A table document for `sim.addTable`: v0 creates it (change data feed on or off), v1 inserts `rows`.
    static func table(_ name: String, columns: [(String, String)], rows: [[Any]], cdf: Bool = true, type: String = "MANAGED")
        throws -> Table
    {
        var create: [String: Any] = ["version": 0, "timestamp": "2026-03-01T00:00:00.000Z", "operation": "CREATE TABLE"]
        if cdf { create["set_properties"] = ["delta.enableChangeDataFeed": "true"] }
        let doc: [String: Any] = [
            "name": name, "table_type": type, "columns": columns.map { ["name": $0.0, "type": $0.1] },
            "commits": [create, ["version": 1, "timestamp": "2026-03-02T00:00:00.000Z", "operation": "WRITE",
                                 "insert": rows]],
        ]
        return try JSONDecoder().decode(Table.self, from: JSONSerialization.data(withJSONObject: doc))
    }

    static func addOddTable(_ sim: RunningSimulator) throws {
        try sim.sim.addTable(table(oddTable, columns: oddColumns, rows: (0..<40).map(oddRow)))
    }

    static func environment(_ sim: RunningSimulator, _ dir: TempDir) -> [String: String] {
        ["PATH": "/usr/bin:/bin", "HOME": dir.path, "DATABRICKS_TOKEN": "dapi-demo-token",
         "CDFSYNC_CONFIG_DIR": dir.sub("config")]
    }

    /// The real binary, its stdout and stderr apart (the file goes to stdout, the summary to stderr).
    static func run(_ arguments: [String], _ sim: RunningSimulator, _ dir: TempDir) throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try BuiltProduct.cdfsync.path)
        p.arguments = arguments
        p.environment = environment(sim, dir)
        p.currentDirectoryURL = URL(fileURLWithPath: dir.path)
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        // stderr is small (a summary or an error); stdout is read to its end first.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    /// `pipeline init --source SOURCE` with the simulator's host and warehouse as flags, written to `file`.
    static func initFile(_ source: String, _ file: String, _ sim: RunningSimulator, _ dir: TempDir,
                         extra: [String] = []) throws -> (status: Int32, yaml: String, stderr: String)
    {
        let r = try run(["pipeline", "init", "--source", source, "--host", sim.baseURL, "--warehouse-id",
                         "8a1c2f3d4e5b6a70"] + extra, sim, dir)
        try r.stdout.write(toFile: dir.sub(file), atomically: true, encoding: .utf8)
        return (r.status, r.stdout, r.stderr)
    }

    static func validate(_ file: String, _ sim: RunningSimulator, _ dir: TempDir) throws -> (status: Int32, output: String) {
        let r = try run(["pipeline", "validate", file, "--state-dir", "state-\(file)"], sim, dir)
        return (r.status, r.stdout + r.stderr)
    }

    @Test func initOnAnOddlyNamedTableWritesAFileThatValidatesAndSyncs() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        try Self.addOddTable(sim)
        let made = try Self.initFile(Self.oddTable, "p.yaml", sim, dir)
        #expect(made.status == 0, "\(made.stderr)")
        let yaml = made.yaml
        // Names quoted as YAML needs them; the source's backticks kept so it parses as the same three names.
        #expect(yaml.contains("name: panel-members-2024 "), "\(yaml)")
        #expect(yaml.contains("source: \"main.research.`Panel Members 2024 ``β```\""), "\(yaml)")
        #expect(yaml.contains("  external_id: \"Participant ID\"  "), "\(yaml)")
        #expect(yaml.contains("  email: E-Mail "), "\(yaml)")
        #expect(yaml.contains("# name match, 100 % of 40 sampled values look like emails"), "\(yaml)")
        #expect(yaml.contains(
            "  # phone: ambiguous — mobile (95 % phone-shaped), \"work phone\" (90 % phone-shaped); uncomment one\n"
                + "  # phone: mobile\n  # phone: \"work phone\"\n"), "\(yaml)")
        #expect(yaml.contains("  column: \"Opt-In Status\""), "\(yaml)")
        #expect(yaml.contains("  opted_in: [\"Opted In\", \"yes\", \"opted_in\"]"), "\(yaml)")
        #expect(yaml.contains("# not recognised, so read as not opted in (add any that mean opted in): \"maybe\" (5)"),
            "\(yaml)")
        #expect(yaml.contains("  # - {column: \"shoe`size\", name: shoe_size, type: integer}"), "\(yaml)")
        #expect(yaml.contains("  # - {column: \"notes $$HOME\", name: notes_home, type: string}"), "\(yaml)")
        #expect(yaml.contains("  # - {column: prefs, type: json}"), "\(yaml)")
        #expect(yaml.contains("mode: cdf ") && yaml.contains("start: latest "), "\(yaml)")
        #expect(!yaml.contains("dapi-demo-token"), "no secret in the file")
        #expect(made.stderr.contains("ambiguous: phone (commented out)"), "\(made.stderr)")

        // The strict loader reads back every name as the warehouse has it.
        let p = try PipelineLoader.load(path: dir.sub("p.yaml"), environment: [:])
        #expect(try QualifiedName(parsing: p.source) == QualifiedName(catalog: "main", schema: "research",
            table: "Panel Members 2024 `β`"))
        #expect(p.mapping == [
            "external_id": "Participant ID", "first_name": "Given Name", "last_name": "Family-Name", "email": "E-Mail",
            "country": "Land", "city": "Stadt", "consent_status": "Opt-In Status", "last_updated": "Updated At",
        ])
        #expect(p.consent == Pipeline.Consent(column: "Opt-In Status", optedIn: ["Opted In", "yes", "opted_in"]))

        let valid = try Self.validate("p.yaml", sim, dir)
        #expect(valid.status == 0 && valid.output.contains("pipeline is valid"), "\(valid.output)")

        // A sync of the file as written: the opted-in rows (5 of every 8, whatever their spelling) are imported.
        let sync = try Self.run(["sync", "p.yaml", "--state-dir", "state"], sim, dir)
        #expect(sync.status == 0, "\(sync.stdout)\(sync.stderr)")
        let panel = try panelContents(dir.sub("state"))
        #expect(panel.count == 25, "\(sync.stdout)")
        #expect(panel["P-0"]?["email"] == "person0@example.org")
        #expect(panel["P-2"] == nil, "OPTED-OUT is not opted in")

        // Every offered attribute uncommented: the names reach the warehouse quoted and come back under their own.
        let all = yaml.replacingOccurrences(of: "  # - {", with: "  - {")
            .replacingOccurrences(of: ".cdfsync/out/panel-members-2024", with: "out-all")
        try all.write(toFile: dir.sub("all.yaml"), atomically: true, encoding: .utf8)
        let validAll = try Self.validate("all.yaml", sim, dir)
        #expect(validAll.status == 0, "\(validAll.output)")
        let syncAll = try Self.run(["sync", "all.yaml", "--state-dir", "state-all"], sim, dir)
        #expect(syncAll.status == 0, "\(syncAll.stdout)\(syncAll.stderr)")
        let line = try #require(try deliveredLines(dir.sub("out-all")).first { $0["external_id"] as? String == "P-1" })
        let attributes = try #require((line["record"] as? [String: Any])?["attributes"] as? [String: Any])
        #expect(attributes["shoe_size"] as? Int == 37)
        #expect(attributes["notes_home"] as? String == "note 1")
        #expect(attributes["große_cm"] as? String == "171.5")
        #expect((attributes["prefs"] as? [String: Any])?["lang"] as? String == "de")
        #expect(attributes["work_phone"] as? String == "+33 1 44 55 00 01")
    }

    @Test func theJSONFormListsEachFieldWithItsCandidates() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        try Self.addOddTable(sim)
        let r = try Self.run(["pipeline", "init", "--source", Self.oddTable, "--host", sim.baseURL, "--warehouse-id",
                              "8a1c2f3d4e5b6a70", "--json", "--sample-rows", "16"], sim, dir)
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(obj["sampled_rows"] as? Int == 16, "the sample is bounded by --sample-rows")
        #expect(obj["source"] as? String == "main.research.Panel Members 2024 `β`")
        let fields = try #require(obj["fields"] as? [[String: Any]])
        let phone = try #require(fields.first { $0["field"] as? String == "phone" })
        #expect(phone["status"] as? String == "ambiguous")
        #expect((phone["candidates"] as? [[String: Any]])?.compactMap { $0["column"] as? String }.prefix(2)
            == ["mobile", "work phone"])
        let email = try #require(fields.first { $0["field"] as? String == "email" })
        #expect(email["column"] as? String == "E-Mail" && email["status"] as? String == "suggested")
        #expect((email["confidence"] as? Double ?? 0) > 0.8)
        let consent = try #require(obj["consent"] as? [String: Any])
        #expect(consent["opted_in"] as? [String] == ["Opted In", "yes", "opted_in"])
        #expect((obj["mode"] as? [String: Any])?["mode"] as? String == "cdf")
        #expect((obj["attributes"] as? [[String: Any]])?.contains { $0["column"] as? String == "shoe`size" } == true)
    }

    @Test func aViewIsReadByWatermarkOnItsCursorColumn() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let made = try Self.initFile("main.research.opted_in_participants", "v.yaml", sim, dir)
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.yaml.contains(
            "mode: watermark                          # a view has no change data feed; last_updated_at is a last-modified time"),
            "\(made.yaml)")
        #expect(made.yaml.contains("watermark:\n  column: last_updated_at "), "\(made.yaml)")
        #expect(made.yaml.contains("  # phone: no matching column"), "\(made.yaml)")
        #expect(made.yaml.contains("# consent: no column looks like consent"), "\(made.yaml)")
        let valid = try Self.validate("v.yaml", sim, dir)
        #expect(valid.status == 0 && valid.output.contains("✓ mode: watermark"), "\(valid.output)")
    }

    @Test func aTableWithoutChangeDataFeedGetsWatermarkOrElseSnapshot() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let rows: [[Any]] = (0..<5).map { ["C\($0)", "c\($0)@example.org", "2026-03-0\($0 + 1)T00:00:00.000Z"] }
        try sim.sim.addTable(Self.table("main.research.contacts", columns: [("contact_id", "STRING"), ("mail", "STRING"),
            ("modified", "TIMESTAMP")], rows: rows, cdf: false))
        try sim.sim.addTable(Self.table("main.research.people", columns: [("member_id", "BIGINT"), ("email", "STRING")],
            rows: (0..<5).map { ["\($0)", "m\($0)@example.org"] }, cdf: false))

        let watermark = try Self.initFile("main.research.contacts", "w.yaml", sim, dir)
        #expect(watermark.status == 0, "\(watermark.stderr)")
        #expect(watermark.yaml.contains("mode: watermark ") && watermark.yaml.contains("  column: modified "),
            "\(watermark.yaml)")
        #expect(watermark.yaml.contains("delta.enableChangeDataFeed is not true; modified is a last-modified time"))
        #expect(watermark.yaml.contains("SET TBLPROPERTIES (delta.enableChangeDataFeed = true)"), "\(watermark.yaml)")
        let v1 = try Self.validate("w.yaml", sim, dir)
        #expect(v1.status == 0 && v1.output.contains("✓ mode: watermark"), "\(v1.output)")

        let snapshot = try Self.initFile("main.research.people", "s.yaml", sim, dir)
        #expect(snapshot.yaml.contains("mode: snapshot ") && snapshot.yaml.contains("  external_id: member_id "),
            "\(snapshot.yaml)")
        let v2 = try Self.validate("s.yaml", sim, dir)
        #expect(v2.status == 0 && v2.output.contains("✓ mode: snapshot"), "\(v2.output)")
    }

    @Test func anEventsTableWithItsIdentityPipeline() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let rows: [[Any]] = (0..<12).map { i in
            ["E\(i)", ["login", "survey_started"][i % 2], "2026-03-02T00:00:\(10 + i).000Z", "P-00000\(i % 3 + 1)", "ios"]
        }
        try sim.sim.addTable(Self.table("main.research.activity-log", columns: [("event_id", "STRING"),
            ("Event Name", "STRING"), ("occurred_at", "TIMESTAMP"), ("participant_id", "STRING"), ("device", "STRING")],
            rows: rows))
        let made = try Self.initFile("main.research.`activity-log`", "e.yaml", sim, dir,
            extra: ["--kind", "events", "--identity-pipeline", "panel"])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.yaml.contains("name: activity-log "), "\(made.yaml)")
        #expect(made.yaml.contains("identity_pipeline: panel "), "\(made.yaml)")
        for line in ["  event_id: event_id ", "  name: \"Event Name\" ", "  timestamp: occurred_at ",
                     "  user_id: participant_id ", "  required: [event_id] "] {
            #expect(made.yaml.contains(line), "\(line) in \(made.yaml)")
        }
        #expect(!made.yaml.contains("consent:"), "events have no consent block")
        let valid = try Self.validate("e.yaml", sim, dir)
        #expect(valid.status == 0 && valid.output.contains("pipeline is valid"), "\(valid.output)")

        // Without the identity pipeline, user_id is offered commented out and the file still validates.
        let bare = try Self.initFile("main.research.`activity-log`", "b.yaml", sim, dir, extra: ["--kind", "events"])
        #expect(bare.yaml.contains("  # user_id: participant_id "), "\(bare.yaml)")
        #expect(bare.yaml.contains("# Note: user_id is left out"), "\(bare.yaml)")
        let v2 = try Self.validate("b.yaml", sim, dir)
        #expect(v2.status == 0, "\(v2.output)")
    }

    @Test func aSavedConnectionIsReferencedByName() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let add = try Self.run(["connection", "add", "sim", "--host", sim.baseURL, "--warehouse-id", "8a1c2f3d4e5b6a70",
                                "--token-env", "DATABRICKS_TOKEN"], sim, dir)
        #expect(add.status == 0, "\(add.stderr)")
        let r = try Self.run(["pipeline", "init", "--source", "main.research.participants", "--connection", "sim"], sim, dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("\nconnection: sim "), "\(r.stdout)")
        try r.stdout.write(toFile: dir.sub("p.yaml"), atomically: true, encoding: .utf8)
        let loaded = try PipelineLoader.load(path: dir.sub("p.yaml"), environment: [:])
        #expect(loaded.connection == Pipeline.ConnectionRef(name: "sim"))
        #expect(loaded.mapping.count == 12 && loaded.consent?.optedIn == ["opted_in"])
        let valid = try Self.validate("p.yaml", sim, dir)
        #expect(valid.status == 0, "\(valid.output)")
    }

    @Test func aSourceThatIsNotVisibleIsOneLineNamingIt() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let r = try Self.run(["pipeline", "init", "--source", "main.research.nobody", "--host", sim.baseURL,
                              "--warehouse-id", "8a1c2f3d4e5b6a70"], sim, dir)
        #expect(r.status == 1 && r.stdout.isEmpty)
        #expect(r.stderr.hasPrefix("error: source main.research.nobody is not visible to this identity"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        let bad = try Self.run(["pipeline", "init", "--source", "main.research", "--host", sim.baseURL], sim, dir)
        #expect(bad.status == 64 && bad.stderr.contains("must have three parts"), "\(bad.stderr)")
    }

    /// A catalog without an information_schema (hive_metastore answers TABLE_OR_VIEW_NOT_FOUND) is read from its
    /// sample's columns and types; table properties that cannot be read leave the mode to `auto`.
    @Test func withoutInformationSchemaOrPropertiesTheSampleAndAutoStandIn() throws {
        let sim = try RunningSimulator()
        var noCatalog = Fault(match: .init(statementContains: "information_schema"), count: nil, kind: .sqlError,
            message: "The table or view `main`.`information_schema`.`tables` cannot be found.")
        noCatalog.errorClass = "TABLE_OR_VIEW_NOT_FOUND"
        noCatalog.sqlState = "42P01"
        _ = sim.sim.addFault(noCatalog)
        let client = StatementClient(settings: try sim.settings())
        let source = try QualifiedName(parsing: "main.research.participants")
        let profile = try SourceProfiler.profile(client: client, source: source)
        #expect(profile.tableType == nil && profile.changeDataFeed == true)
        #expect(profile.columns.map(\.name) == ["participant_id", "first_name", "last_name", "email", "phone", "company",
            "country", "city", "job_title", "segment", "consent_status", "last_updated_at"])
        #expect(profile.columns.last?.type.uppercased() == "TIMESTAMP")
        let s = PipelineSuggester.suggest(profile)
        #expect(s.mode.mode == .cdf && s.mapping.count == 12 && s.isComplete)

        var denied = Fault(match: .init(statementContains: "SHOW TBLPROPERTIES"), count: nil, kind: .sqlError,
            message: "User does not have permission to read table properties.")
        denied.errorClass = "INSUFFICIENT_PERMISSIONS"
        denied.sqlState = "42501"
        _ = sim.sim.addFault(denied)
        let unknown = try SourceProfiler.suggest(client: client, source: source)
        #expect(unknown.changeDataFeed == nil)
        #expect(unknown.mode.mode == .auto
            && unknown.mode.reason == "the table's properties could not be read: auto decides at each run")
    }

    /// The library the console calls: what it suggests is the pipeline its file loads as.
    @Test func theSuggestionIsThePipelineItsFileLoadsAs() throws {
        let sim = try RunningSimulator()
        try Self.addOddTable(sim)
        let client = StatementClient(settings: try sim.settings())
        let s = try SourceProfiler.suggest(client: client, source: try QualifiedName(parsing: Self.oddTable))
        #expect(s.sampledRows == 40 && s.columnCount == Self.oddColumns.count)
        let connection = Pipeline.ConnectionRef(warehouseID: "8a1c2f3d4e5b6a70", tokenEnv: "DATABRICKS_TOKEN")
        let loaded = try PipelineLoader.load(yaml: s.yaml(connection: connection), environment: [:])
        #expect(loaded == s.pipeline(connection: connection))
    }
}
