import Foundation
import Testing
@testable import WarehouseSimulator

@Suite struct SyntheticTests {
    static func workspace(rows: Int, seed: UInt64 = 7, versions: Int = 0, fraction: Double = 0.1) throws -> Workspace {
        var ws = try Harness.minimal()
        ws.tables.append(
            Table(
                name: "main.crm.panel", columns: [],
                synthetic: SyntheticSpec(seed: seed, rows: rows, updateFraction: fraction, updateVersions: versions)))
        return ws
    }

    /// Multiset of rows.
    static func bag(_ rows: [[String?]]) -> [String: Int] {
        var b: [String: Int] = [:]
        for r in rows { b[r.map { $0 ?? "∅" }.joined(separator: "|"), default: 0] += 1 }
        return b
    }

    @Test func documentDecodesSyntheticTablesWithoutColumns() async throws {
        let doc = """
            {"format":"cdfsync-sim/1","warehouses":[],"principals":[],
             "tables":[{"name":"main.bench.panel","synthetic":{"seed":42,"rows":1000,"update_fraction":0.01,"update_versions":2}}]}
            """
        let ws = try Workspace.load(data: Data(doc.utf8))
        #expect(ws.tables[0].columns.count == 12)
        let sim = try Simulator(workspace: ws)
        #expect(sim.latestVersion(table: "main.bench.panel") == 3)
    }

    @Test func sameSeedGivesSameBytesAndOtherSeedDiffers() async throws {
        func fetch(_ seed: UInt64) async throws -> [[String?]] {
            let h = try Harness(workspace: try Self.workspace(rows: 300, seed: seed, versions: 2), configuration: .init(rowsPerChunk: 64))
            return try await h.rows("SELECT * FROM table_changes('main.crm.panel', 1, 3)").rows
        }
        let a = try await fetch(7), b = try await fetch(7), c = try await fetch(8)
        #expect(a == b)
        #expect(a != c)
        let expected: Int = 300 + 2 * 30 + 2 * 30
        #expect(a.count == expected)
        // Values look like a participant panel.
        let first = a[0]
        #expect(first[0] == "P000000000")
        #expect(first[3]!.contains("@"))
        #expect(first[4]!.hasPrefix("+"))
        #expect(["opted_in", "opted_out"].contains(first[10]!))
        #expect(first[12] == "insert")
        #expect(first[13] == "1")
    }

    @Test func changesReplayedOnASnapshotGiveTheNextSnapshot() async throws {
        let h = try Harness(workspace: try Self.workspace(rows: 400, versions: 1), configuration: .init(rowsPerChunk: 50))
        try h.sim.appendSyntheticCommit(table: "main.crm.panel", updateFraction: 0.05, insertRows: 25, deleteFraction: 0.02)
        let reply = try await h.call(
            "POST", "/_sim/tables/main.crm.panel/synthetic-commit",
            json: ["update_fraction": 0.2, "insert_rows": 3, "delete_fraction": 0.01], token: "sim-admin")
        #expect(reply.status == 200)
        #expect(reply.json["version"] as? Int == 4)
        let cols = "participant_id, first_name, last_name, email, phone, company, country, city, job_title, segment, consent_status, last_updated_at"
        var bag = Self.bag(try await h.rows("SELECT \(cols) FROM main.crm.panel VERSION AS OF 1").rows)
        #expect(bag.values.reduce(0, +) == 400)
        for v in 2...4 {
            let changes = try await h.rows("SELECT \(cols), _change_type FROM table_changes('main.crm.panel', \(v), \(v))").rows
            var inserted = 0, updated = 0, deleted = 0
            for row in changes {
                let key = row.prefix(12).map { $0 ?? "∅" }.joined(separator: "|")
                switch row[12] {
                case "insert", "update_postimage":
                    bag[key, default: 0] += 1
                    if row[12] == "insert" { inserted += 1 } else { updated += 1 }
                default:
                    let n = bag[key, default: 0]
                    #expect(n > 0, "removed row \(key) must exist before version \(v)")
                    bag[key] = n == 1 ? nil : n - 1
                    if row[12] == "delete" { deleted += 1 }
                }
            }
            let snapshot = Self.bag(try await h.rows("SELECT * FROM main.crm.panel VERSION AS OF \(v)").rows)
            #expect(snapshot == bag, "snapshot at \(v) equals previous snapshot plus changes")
            if v == 3 {
                #expect(inserted == 25)
                #expect(deleted == 8)
                #expect(updated > 0)
            }
        }
        // DESCRIBE HISTORY reports the generated versions.
        let hist = try await h.rows("DESCRIBE HISTORY main.crm.panel").rows
        #expect(hist.map { $0[4]! } == ["MERGE", "MERGE", "MERGE", "WRITE", "CREATE TABLE"])
    }

    @Test func updateVersionsTouchOnlyTheirFraction() async throws {
        let h = try Harness(workspace: try Self.workspace(rows: 10_000, versions: 3, fraction: 0.01), configuration: .init(rowsPerChunk: 5000))
        let r = try await h.execute("SELECT participant_id FROM table_changes('main.crm.panel', 2, 4)")
        #expect((r["manifest"] as! [String: Any])["total_row_count"] as? Int == 3 * 2 * 100)
        let snap = try await h.execute("SELECT participant_id FROM main.crm.panel")
        #expect((snap["manifest"] as! [String: Any])["total_row_count"] as? Int == 10_000)
        let limited = try await h.rows("SELECT participant_id, email FROM main.crm.panel LIMIT 3 OFFSET 9998")
        #expect(limited.rows.map { $0[0]! } == ["P000009998", "P000009999"])
    }

    @Test func largeGeneratedRangesRefuseGenericSorting() async throws {
        let h = try Harness(workspace: try Self.workspace(rows: 300_000), configuration: .init(rowsPerChunk: 1000, inlineByteLimit: nil))
        let r = try await h.execute("SELECT * FROM main.crm.panel ORDER BY email")
        #expect(errorClass(r) == "UNSUPPORTED_FEATURE.SIMULATOR")
        let ok = try await h.execute("SELECT * FROM table_changes('main.crm.panel', 0) ORDER BY _commit_version")
        #expect(state(ok) == "SUCCEEDED")
    }

    @Test func syntheticTablesFromTheLibraryAPI() async throws {
        let h = try Harness()
        try h.sim.addSyntheticTable(name: "main.crm.bench", rows: 50, seed: 1)
        #expect(h.sim.latestVersion(table: "main.crm.bench") == 1)
        #expect(try await h.rows("SELECT participant_id FROM main.crm.bench").rows.count == 50)
        #expect(throws: (any Error).self) { try h.sim.addSyntheticTable(name: "main.crm.bench", rows: 5) }
        #expect(throws: (any Error).self) { try h.sim.appendSyntheticCommit(table: "main.crm.customers") }
    }

    @Test func syntheticCSVLinksMatchJSONRows() async throws {
        let h = try Harness(
            workspace: try Self.workspace(rows: 120, versions: 1), configuration: .init(rowsPerChunk: 1000, rowsPerExternalChunk: 50),
            socket: true)
        let json = try await h.rows("SELECT participant_id, email, _change_type FROM table_changes('main.crm.panel', 1)").rows
        let r = try await h.execute(
            "SELECT participant_id, email, _change_type FROM table_changes('main.crm.panel', 1)",
            extra: ["disposition": "EXTERNAL_LINKS", "format": "CSV"])
        let id = r["statement_id"] as! String
        var lines: [String] = []
        for i in 0..<((r["manifest"] as! [String: Any])["total_chunk_count"] as! Int) {
            let c = try await h.call("GET", "/api/2.0/sql/statements/\(id)/result/chunks/\(i)").json
            let u = URL(string: (c["external_links"] as! [[String: Any]])[0]["external_link"] as! String)!
            let text = try await h.send("GET", u.path + "?" + u.query!).text
            lines += text.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        }
        #expect(lines.first == "participant_id,email,_change_type")
        #expect(Array(lines.dropFirst()) == json.map { $0.map { $0! }.joined(separator: ",") })
        #expect(json.count == 120 + 2 * 12)
        #expect(h.sim.baseURL == "http://127.0.0.1:\(h.port)")
    }

    /// The engine's incremental loop (design §3) against the demo workspace.
    @Test func incrementalLoopOverTheDemoWorkspace() async throws {
        let h = try Harness(workspace: try Workspace.load(path: Harness.fixture("demo-workspace.json")), configuration: .init(rowsPerChunk: 64))
        h.token = "dapi-demo-token"
        h.warehouseID = "8a1c2f3d4e5b6a70"
        func latest() async throws -> Int {
            Int(try await h.rows("DESCRIBE HISTORY `main`.`research`.`participants` LIMIT 1").rows[0][0]!)!
        }
        func exec(_ sql: String, _ params: [[String: Any]] = []) async throws -> [[String?]] {
            let r = try await h.execute(sql, params: params, extra: ["warehouse_id": "8a1c2f3d4e5b6a70"])
            guard state(r) == "SUCCEEDED" else { throw ClientError(description: "\(r)") }
            var out: [[String?]] = []
            var result = r["result"] as! [String: Any]
            while true {
                for row in result["data_array"] as? [[Any]] ?? [] { out.append(row.map { $0 as? String }) }
                guard let link = result["next_chunk_internal_link"] as? String else { break }
                result = try await h.call("GET", link).json
            }
            return out
        }
        var panel: [String: [String?]] = [:]
        var last = try await latest()
        // Initial: snapshot at latest.
        for row in try await exec("SELECT * FROM main.research.participants VERSION AS OF :v", [["name": "v", "value": String(last), "type": "BIGINT"]]) {
            panel[row[0]!] = row
        }
        #expect(panel.count == 350)
        // Nothing new yet: start after latest fails the documented way.
        let none = try await h.execute(
            "SELECT * FROM table_changes('main.research.participants', :s, :e)",
            params: [["name": "s", "value": String(last + 1), "type": "BIGINT"], ["name": "e", "value": String(last + 1), "type": "BIGINT"]],
            extra: ["warehouse_id": "8a1c2f3d4e5b6a70"])
        #expect(errorClass(none) == "DELTA_CDC_START_VERSION_AFTER_LATEST")
        // The demo appends more commits; the next run reads only them.
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Harness.fixture("demo-commits-2.json"))))
        #expect(try await h.call("POST", "/_sim/commits", json: doc, token: "sim-admin").status == 200)
        let end = try await latest()
        #expect(end == 9)
        let changes = try await exec(
            "SELECT *, _change_type, _commit_version FROM table_changes('main.research.participants', :s, :e) ORDER BY _commit_version",
            [["name": "s", "value": String(last + 1), "type": "BIGINT"], ["name": "e", "value": String(end), "type": "BIGINT"]])
        for row in changes {
            switch row[12] {
            case "insert", "update_postimage": panel[row[0]!] = Array(row.prefix(12))
            case "delete": panel[row[0]!] = nil
            default: break
            }
        }
        last = end
        let snapshot = try await exec("SELECT * FROM main.research.participants")
        #expect(panel.count == snapshot.count)
        for row in snapshot { #expect(panel[row[0]!] == row) }
    }
}
