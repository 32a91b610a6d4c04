import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// Source schema changes over loopback: a column renamed, added or dropped in the customer's table (Delta column
/// mapping) between or inside syncs. Change data cannot be read across a rename or drop in one statement, and a
/// mapped column has another name in older versions; the sync must read every version, under the right names, and
/// lose nothing.
@Suite("Source schema changes")
struct SchemaChangeSyncTests {
    static let table = "main.research.participants"

    static let newYAML = """
        name: panel
        connection: {warehouse_id: 8a1c2f3d4e5b6a70}
        source: main.research.participants
        start: first
        mapping: {external_id: participant_id, email: email_address, phone: phone, country: country,
                  consent_status: consent_status, last_updated: last_updated_at}
        attributes: [{column: tier}]
        filters: [{column: email_address, op: is_not_null}]
        consent: {opted_in: [opted_in]}
        validation: {required: [external_id, email], default_phone_region: GB}
        """
    static let oldYAML = newYAML.replacingOccurrences(of: "email: email_address", with: "email: email")
        .replacingOccurrences(of: "attributes: [{column: tier}]\n", with: "")
        .replacingOccurrences(of: "column: email_address", with: "column: email")

    static func row(_ id: String, _ email: String, _ ts: String, tier: String?? = .none) -> Row {
        let base: Row = [id, "Ada", "Lovelace", email, "+447700900\(id.suffix(3))", "Analytical", "GB", "London", "Engineer",
                         "enterprise", "opted_in", ts]
        if case .some(let t) = tier { return base + [t] }
        return base
    }

    /// v7 column mapping on, v8 an insert, v9 `email` renamed `email_address`, v10 an insert, v11 `tier` added,
    /// v12 an insert with a tier, v13 an update of v8's row (new e-mail, a tier).
    static func evolve(_ sim: RunningSimulator) throws {
        func commit(_ v: Int, _ op: String, props: [String: String]? = nil, insert: [Row]? = nil,
                    update: [Commit.Update]? = nil, alter: Commit.Alter? = nil) throws {
            try sim.sim.appendCommit(table: table, Commit(version: v, timestamp: ts(v), operation: op,
                setProperties: props, insert: insert, update: update, alter: alter))
        }
        try commit(7, "SET TBLPROPERTIES", props: ["delta.columnMapping.mode": "name"])
        try commit(8, "WRITE", insert: [row("P-900001", "ada@example.org", ts(8))])
        try commit(9, "RENAME COLUMN", alter: .init(renameColumn: .init(from: "email", to: "email_address")))
        try commit(10, "WRITE", insert: [row("P-900002", "grace@example.org", ts(10))])
        try commit(11, "ADD COLUMNS", alter: .init(addColumns: [ColumnDef(name: "tier", type: "STRING")]))
        try commit(12, "WRITE", insert: [row("P-900003", "edsger@example.org", ts(12), tier: "gold")])
        try commit(13, "UPDATE", update: [.init(before: row("P-900001", "ada@example.org", ts(8), tier: .some(nil)),
                                                after: row("P-900001", "ada.l@example.org", ts(13), tier: "silver"))])
    }

    static func ts(_ v: Int) -> String { "2026-04-01T10:\(10 + v):00.000Z" }

    func sync(_ sim: RunningSimulator, _ yaml: String, state: String, output: String, replay: ReplayOptions? = nil,
              historyLimit: Int64? = nil, fallBackToSnapshot: Bool = true) throws -> SyncSummary {
        let store = try PanelStore(directory: state)
        let client = StatementClient(settings: try sim.settings())
        client.retryPolicy.baseDelay = 0.01
        var options = try SyncOptions(pipeline: try PipelineLoader.load(yaml: yaml), outputDirectory: output)
        if let historyLimit { options.historyLimit = historyLimit }
        options.fallBackToSnapshot = fallBackToSnapshot
        let s = CDFSync(client: client, store: store, options: options)
        return try replay.map { try s.replay($0) } ?? s.run()
    }

    /// `pipeline validate`'s findings (the store opened as a reader, closed on return).
    func validate(_ sim: RunningSimulator, _ yaml: String, state: String) throws -> [ValidationFinding] {
        let s = CDFSync(client: StatementClient(settings: try sim.settings()),
            store: try PanelStore(directory: state, access: .reader),
            options: try SyncOptions(pipeline: try PipelineLoader.load(yaml: yaml), outputDirectory: state + "-out"))
        return s.validateLive()
    }

    func failure(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch { return "\(error)" }
    }

    func email(_ panel: [String: [String: String?]], _ id: String) -> String? { panel[id]?["email"] ?? nil }

    @Test func aRenamedColumnIsReadUnderItsOldNameInOlderVersions() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let first = try sync(sim, Self.oldYAML, state: dir.sub("state"), output: dir.sub("out"))
        #expect(first.toVersion == 6)
        try Self.evolve(sim)

        // The pipeline still maps the old name: refused before anything is read, saying what happened and what to map.
        let message = failure { _ = try sync(sim, Self.oldYAML, state: dir.sub("state"), output: dir.sub("out")) }
        #expect(message.contains("column email was renamed to email_address at version 9"), "\(message)")
        #expect(message.contains("Map email_address instead of email"), "\(message)")
        #expect(try PanelStore(directory: dir.sub("state")).checkpoint(pipeline: "panel")?.tableVersion == 6)
        // `pipeline validate` says the same.
        let finding = try validate(sim, Self.oldYAML, state: dir.sub("state")).first { $0.field == "mapping.email" }
        #expect(finding?.ok == false)
        #expect(finding?.message.contains("renamed to email_address at version 9: map email_address") == true,
                "\(String(describing: finding))")

        // Mapped to the new name, the sync reads v7…v8 under the old one, then the rest: one statement each side.
        let second = try sync(sim, Self.newYAML, state: dir.sub("state"), output: dir.sub("out"))
        #expect(second.checkpointBefore == 6 && second.fromVersion == 7)
        #expect(second.toVersion == 13)
        #expect(second.statementIDs.count == 2)
        // The run's record says what it read across.
        #expect(second.schemaChanges == ["v7 column mapping set (SET TBLPROPERTIES)", "v9 column email renamed to email_address",
                                         "v11 column(s) tier added"])
        #expect(second.render().contains("schema change  v9 column email renamed to email_address"))
        let record = try #require(try PanelStore(directory: dir.sub("state"), access: .reader).runs(limit: 1).first)
        #expect(String(decoding: record.json, as: UTF8.self).contains(#""schema_changes":["v7 column mapping set"#))
        #expect(try PanelStore(directory: dir.sub("state")).checkpoint(pipeline: "panel")?.tableVersion == 13)
        let panel = try panelContents(dir.sub("state"))
        #expect(email(panel, "P-900001") == "ada.l@example.org")
        #expect(email(panel, "P-900002") == "grace@example.org")
        #expect(email(panel, "P-900003") == "edsger@example.org")

        // The same table synced from v0 with the new mapping: every older version read under the old name.
        let fresh = try sync(sim, Self.newYAML, state: dir.sub("fresh"), output: dir.sub("fresh-out"))
        #expect(fresh.toVersion == 13)
        let freshPanel = try panelContents(dir.sub("fresh"))
        #expect(freshPanel.count == panel.count)
        #expect(freshPanel.values.filter { ($0["email"] ?? nil) == nil }.isEmpty)
        #expect(email(freshPanel, "P-000001") == email(panel, "P-000001"))
        #expect(email(freshPanel, "P-900001") == "ada.l@example.org")

        // The added column: the attribute of the row written after it, and of the update.
        let delivered = try deliveredLines(dir.sub("fresh-out"))
        let tiers = delivered.compactMap { line -> String? in
            guard line["external_id"] as? String == "P-900001" || line["external_id"] as? String == "P-900003",
                let attrs = (line["record"] as? [String: Any])?["attributes"] as? [String: Any] else { return nil }
            return "\(line["external_id"]!)=\(attrs["tier"] ?? "nil")"
        }
        #expect(tiers.contains("P-900003=gold"), "\(tiers)")
        #expect(tiers.contains("P-900001=silver"), "\(tiers)")

        // A replay across the rename re-reads both sides and changes nothing.
        let replay = try sync(sim, Self.newYAML, state: dir.sub("fresh"), output: dir.sub("fresh-out"),
                              replay: ReplayOptions(fromVersion: 0, dryRun: true))
        #expect(replay.statementIDs.count == 3)  // v0…v6, v7…v8 (column mapping on), v9…v13
        #expect(replay.inserted == 0 && replay.updated == 0)
        #expect(replay.unchanged > 0)
    }

    @Test func aSyncOfEveryColumnNamesThemAsTheyAreNow() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        try Self.evolve(sim)
        // `--table … --key …` without a column list: every record carries today's columns, whichever version it
        // was read from (not `email` before v9 and `email_address` after).
        let s = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"))
        #expect(s.toVersion == 13)
        let panel = try panelContents(dir.sub("state"))
        #expect(panel.count > 300)
        #expect(panel.values.allSatisfy { $0.keys.contains("email_address") && !$0.keys.contains("email") })
        #expect(panel.values.allSatisfy { $0.keys.contains("tier") })
        #expect(panel["P-000001"]?["email_address"] ?? nil != nil)
        #expect(panel["P-900001"]?["tier"] ?? nil == "silver")
        #expect(panel["P-000001"]?["tier"] ?? "x" == nil)
    }

    @Test func aRangeTheHistoryDoesNotExplainIsSplitWhereTheWarehouseSays() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        // An unmapped column dropped; the engine sees one history entry, so it plans one range over the drop.
        try sim.sim.appendCommit(table: Self.table, Commit(version: 7, timestamp: Self.ts(7), operation: "SET TBLPROPERTIES",
            setProperties: ["delta.columnMapping.mode": "name"]))
        try sim.sim.appendCommit(table: Self.table, Commit(version: 8, timestamp: Self.ts(8), operation: "WRITE",
            insert: [Self.row("P-900001", "ada@example.org", Self.ts(8))]))
        try sim.sim.appendCommit(table: Self.table, Commit(version: 9, timestamp: Self.ts(9), operation: "DROP COLUMNS",
            alter: .init(dropColumns: ["city"])))
        var after = Self.row("P-900002", "grace@example.org", Self.ts(10))
        after.remove(at: 7)
        try sim.sim.appendCommit(table: Self.table, Commit(version: 10, timestamp: Self.ts(10), operation: "WRITE",
            insert: [after]))

        let s = try sync(sim, Self.oldYAML, state: dir.sub("state"), output: dir.sub("out"), historyLimit: 1)
        #expect(s.toVersion == 10)
        #expect(s.statementIDs.count == 2)  // v0…v8 and v9…v10 (the refused v0…v10 ran no rows)
        #expect(try PanelStore(directory: dir.sub("state")).checkpoint(pipeline: "panel")?.tableVersion == 10)
        let panel = try panelContents(dir.sub("state"))
        #expect(email(panel, "P-900001") == "ada@example.org")
        #expect(email(panel, "P-900002") == "grace@example.org")
        // As a sync with the whole history sees it.
        let planned = try sync(sim, Self.oldYAML, state: dir.sub("planned"), output: dir.sub("planned-out"))
        #expect(planned.statementIDs.count == 3)  // v0…v6, v7…v8 (column mapping on), v9…v10
        #expect(try panelContents(dir.sub("planned")) == panel)
    }

    /// Databricks refuses change data it cannot read in any range: a start commit whose removed files were written
    /// in an older, incompatible schema, or a single version. Splitting cannot help; the sync resyncs from a
    /// snapshot (as for vacuumed change data), and a sync without that fallback fails and moves nothing.
    @Test(arguments: [
        ("DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_STARTING_COMMIT_SCHEMA",
         "Cannot read changes from version 7 because its removed files use the version 6 schema, which is incompatible with the read schema."),
        ("DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE",
         "Retrieving table changes between version 7 and 7 failed because of an incompatible schema change."),
    ])
    func changeDataNoRangeCanReadIsResyncedFromASnapshot(errorClass: String, message: String) throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        _ = try sync(sim, Self.oldYAML, state: dir.sub("state"), output: dir.sub("out"))
        try sim.sim.appendCommit(table: Self.table, Commit(version: 7, timestamp: Self.ts(7), operation: "WRITE",
            insert: [Self.row("P-900001", "ada@example.org", Self.ts(7))]))
        func inject() {
            var f = Fault(match: .init(statementContains: "table_changes"), count: 1, kind: .sqlError, message: message)
            f.errorClass = errorClass
            f.sqlState = "0AKDC"
            sim.sim.addFault(f)
        }

        inject()
        let refused = failure {
            _ = try sync(sim, Self.oldYAML, state: dir.sub("state"), output: dir.sub("out"), fallBackToSnapshot: false)
        }
        #expect(refused.contains(errorClass), "\(refused)")
        #expect(refused.contains("replay from the version after it"), "\(refused)")
        #expect(try PanelStore(directory: dir.sub("state")).checkpoint(pipeline: "panel")?.tableVersion == 6)

        inject()
        let s = try sync(sim, Self.oldYAML, state: dir.sub("state"), output: dir.sub("out"))
        #expect(s.mode == .snapshot)
        #expect(s.toVersion == 7)
        #expect(s.warnings.contains { $0.contains(errorClass) && $0.contains("resynced from a snapshot at v7") }, "\(s.warnings)")
        #expect(try PanelStore(directory: dir.sub("state")).checkpoint(pipeline: "panel")?.tableVersion == 7)
        #expect(email(try panelContents(dir.sub("state")), "P-900001") == "ada@example.org")
    }

    @Test func aDroppedMappedColumnStopsTheRunBeforeReadingNamingTheVersion() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        _ = try sync(sim, Self.oldYAML, state: dir.sub("state"), output: dir.sub("out"))
        try sim.sim.appendCommit(table: Self.table, Commit(version: 7, timestamp: Self.ts(7), operation: "SET TBLPROPERTIES",
            setProperties: ["delta.columnMapping.mode": "name"]))
        try sim.sim.appendCommit(table: Self.table, Commit(version: 8, timestamp: Self.ts(8), operation: "DROP COLUMNS",
            alter: .init(dropColumns: ["phone"])))
        let message = failure { _ = try sync(sim, Self.oldYAML, state: dir.sub("state"), output: dir.sub("out")) }
        #expect(message.contains("column phone was dropped at version 8"), "\(message)")
        #expect(message.contains("Remove phone from the pipeline's mapping"), "\(message)")
        #expect(try validate(sim, Self.oldYAML, state: dir.sub("state")).first { $0.field == "mapping.phone" }?
            .message.contains("dropped at version 8") == true)
        #expect(try PanelStore(directory: dir.sub("state")).checkpoint(pipeline: "panel")?.tableVersion == 6)
    }

    /// Every delivered line of an output directory.
    func deliveredLines(_ dir: String) throws -> [[String: Any]] {
        var out: [[String: Any]] = []
        for f in try FileManager.default.contentsOfDirectory(atPath: dir).sorted() where f.hasSuffix(".ndjson.zst") {
            let data = try Zstd.decompress(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f))))
            for line in data.split(separator: UInt8(ascii: "\n")) {
                out.append(try JSONSerialization.jsonObject(with: Data(line)) as! [String: Any])
            }
        }
        return out
    }
}
