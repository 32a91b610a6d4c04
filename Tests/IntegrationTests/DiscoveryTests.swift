import CDFSyncClient
import CDFSyncCore
import CDFSyncTestSupport
import Foundation
import Synchronization
import Testing
import WarehouseSimulator

/// The workspace the connection, warehouse and discovery tests run against.
let connectionTestWorkspace = #"""
{
  "format": "cdfsync-sim/1",
  "warehouses": [
    {"id": "0a1b2c3d4e5f6071", "name": "Running Warehouse", "state": "RUNNING"},
    {"id": "1b2c3d4e5f607182", "name": "Cold Warehouse", "state": "STOPPED", "start_seconds": 1}
  ],
  "principals": [
    {"name": "sync-bot", "tokens": ["dapi-good"],
     "oauth": {"client_id": "sp-client", "client_secret": "sp-secret"},
     "warehouses": {"0a1b2c3d4e5f6071": "CAN_USE", "1b2c3d4e5f607182": "CAN_USE"},
     "grants": [
       {"on": "main", "privileges": ["USE CATALOG"]},
       {"on": "main.crm", "privileges": ["USE SCHEMA", "SELECT"]},
       {"on": "main.secret", "privileges": ["USE SCHEMA"]},
       {"on": "other", "privileges": ["USE CATALOG"]},
       {"on": "other.s", "privileges": ["USE SCHEMA", "SELECT"]}
     ]},
    {"name": "no-warehouse", "tokens": ["dapi-nowh"], "grants": [{"on": "main", "privileges": ["ALL PRIVILEGES"]}]},
    {"name": "viewer", "tokens": ["dapi-viewer"], "warehouses": {"0a1b2c3d4e5f6071": "CAN_VIEW"},
     "grants": [{"on": "main", "privileges": ["USE CATALOG"]}]},
    {"name": "no-grants", "tokens": ["dapi-nogrants"], "warehouses": {"0a1b2c3d4e5f6071": "CAN_USE"}, "grants": []},
    {"name": "crm-only", "tokens": ["dapi-crm"], "warehouses": {"0a1b2c3d4e5f6071": "CAN_USE"},
     "grants": [
       {"on": "main", "privileges": ["USE CATALOG"]},
       {"on": "main.crm.customers", "privileges": ["SELECT"]},
       {"on": "main.crm", "privileges": ["USE SCHEMA"]}
     ]}
  ],
  "tables": [
    {"name": "main.crm.customers", "table_type": "MANAGED",
     "columns": [
       {"name": "id", "type": "BIGINT", "nullable": false},
       {"name": "email", "type": "STRING"},
       {"name": "score", "type": "DECIMAL(10,2)"}
     ],
     "commits": [
       {"version": 0, "timestamp": "2026-03-01T08:00:00.000Z", "operation": "CREATE TABLE",
        "set_properties": {"delta.enableChangeDataFeed": "true"}},
       {"version": 1, "timestamp": "2026-03-01T09:00:00.000Z", "operation": "WRITE",
        "insert": [["1", "ana@example.com", "10.50"], ["2", "bo@example.com", null]]},
       {"version": 2, "timestamp": "2026-03-02T09:00:00.000Z", "operation": "WRITE",
        "insert": [["3", "cy@example.com", "1.00"]]}
     ]},
    {"name": "main.crm.plain", "table_type": "MANAGED",
     "columns": [{"name": "k", "type": "INT", "nullable": false}, {"name": "v", "type": "STRING"}],
     "commits": [
       {"version": 0, "timestamp": "2026-02-01T08:00:00.000Z", "operation": "CREATE TABLE"},
       {"version": 1, "timestamp": "2026-02-01T09:00:00.000Z", "operation": "WRITE", "insert": [["1", "x"]]}
     ]},
    {"name": "main.crm.`weird-name`", "table_type": "EXTERNAL",
     "columns": [{"name": "a b", "type": "STRING"}],
     "commits": [
       {"version": 0, "timestamp": "2026-02-01T08:00:00.000Z", "operation": "CREATE TABLE",
        "set_properties": {"delta.enableChangeDataFeed": "true"}},
       {"version": 1, "timestamp": "2026-02-01T09:00:00.000Z", "operation": "WRITE", "insert": [["x"]]},
       {"version": 2, "timestamp": "2026-02-01T10:00:00.000Z", "operation": "WRITE", "insert": [["y"]]},
       {"version": 3, "timestamp": "2026-02-01T11:00:00.000Z", "operation": "WRITE", "insert": [["z"]]},
       {"version": 4, "timestamp": "2026-02-01T12:00:00.000Z", "operation": "WRITE", "insert": [["w"]]}
     ]},
    {"name": "main.crm.opted_in", "table_type": "VIEW", "columns": [],
     "view": {"source": "main.crm.customers", "select": ["id AS customer_id", "email"], "where": "score IS NOT NULL"}},
    {"name": "main.secret.salaries", "table_type": "MANAGED",
     "columns": [{"name": "id", "type": "INT"}],
     "commits": [{"version": 0, "timestamp": "2026-01-01T00:00:00.000Z", "operation": "CREATE TABLE"}]},
    {"name": "other.s.t1", "table_type": "MANAGED",
     "columns": [{"name": "x", "type": "DOUBLE"}],
     "commits": [{"version": 0, "timestamp": "2026-01-01T00:00:00.000Z", "operation": "CREATE TABLE"}]}
  ]
}
"""#

let runningWarehouse = "0a1b2c3d4e5f6071"
let coldWarehouse = "1b2c3d4e5f607182"

/// The simulator in-process on 127.0.0.1, port 0.
///
/// The simulators are deliberately never stopped. Swift may release a harness right after its last use in a
/// test (often `h.settings()`), before the requests that need the server; and an earlier simulator closed its
/// listening descriptor while its accept thread could still call `accept()` on that number, so a stopped server
/// could swallow another test's connections after descriptor reuse (fixed on the sim branch since). Keeping every
/// simulator running for the life of the test process rules both out.
final class SimHarness: Sendable {
    let running: RunningSimulator
    var sim: Simulator { running.sim }
    var port: Int { running.port }

    private static let keepAlive = Mutex<[RunningSimulator]>([])

    init(_ json: String = connectionTestWorkspace) throws {
        running = try RunningSimulator(workspaceJSON: json)
        Self.keepAlive.withLock { $0.append(running) }
    }

    var host: String { "http://127.0.0.1:\(port)" }

    func settings(token: String = "dapi-good", warehouse: String = runningWarehouse) throws -> ConnectionSettings {
        try ConnectionSettings(host: host, warehouseID: warehouse, authentication: .personalAccessToken(Secret(token)))
    }

    func client(token: String = "dapi-good", warehouse: String = runningWarehouse) throws -> StatementClient {
        let c = StatementClient(settings: try settings(token: token, warehouse: warehouse))
        var p = RetryPolicy()
        p.maxAttempts = 2
        c.retryPolicy = p
        return c
    }
}

@Suite("Discovery against the simulator")
struct DiscoveryTests {
    @Test func listsWhatTheIdentityMaySeeWithDetails() throws {
        let h = try SimHarness()
        let result = try Discovery.run(client: try h.client())
        #expect(result.catalogs.map(\.name) == ["main", "other"])
        let main = try #require(result.catalogs.first { $0.name == "main" })
        // main.secret is visible as a schema (USE SCHEMA) but its table is not (no SELECT/BROWSE).
        #expect(main.schemas.map(\.name) == ["crm", "secret"])
        #expect(main.schemas[1].tables.isEmpty)
        #expect(main.schemas[0].tables.map(\.name) == ["customers", "opted_in", "plain", "weird-name"])
        #expect(!main.schemas.contains { $0.name == "information_schema" })

        let customers = try #require(result.table(QualifiedName(catalog: "main", schema: "crm", table: "customers")))
        #expect(customers.type == "MANAGED")
        #expect(customers.format == "DELTA")
        #expect(customers.changeDataFeed == true)
        #expect(customers.latestVersion == 2)
        #expect(customers.columns == [
            DiscoveredColumn(name: "id", type: "bigint", nullable: false, position: 1),
            DiscoveredColumn(name: "email", type: "string", nullable: true, position: 2),
            DiscoveredColumn(name: "score", type: "decimal(10,2)", nullable: true, position: 3),
        ])
        #expect(customers.column(named: "EMAIL")?.position == 2)

        let plain = try #require(result.table(QualifiedName(catalog: "main", schema: "crm", table: "plain")))
        #expect(plain.changeDataFeed == false)
        #expect(plain.latestVersion == 1)

        // A name that only works when quoted in SHOW TBLPROPERTIES and DESCRIBE HISTORY.
        let weird = try #require(result.table(QualifiedName(catalog: "main", schema: "crm", table: "weird-name")))
        #expect(weird.type == "EXTERNAL")
        #expect(weird.changeDataFeed == true)
        #expect(weird.latestVersion == 4)
        #expect(weird.columns.map(\.name) == ["a b"])

        let view = try #require(result.table(QualifiedName(catalog: "main", schema: "crm", table: "opted_in")))
        #expect(view.type == "VIEW")
        #expect(view.changeDataFeed == nil)
        #expect(view.latestVersion == nil)
        #expect(view.columns.map(\.name) == ["customer_id", "email"])

        #expect(result.table(QualifiedName(catalog: "main", schema: "secret", table: "salaries")) == nil)
        let t1 = try #require(result.table(QualifiedName(catalog: "other", schema: "s", table: "t1")))
        #expect(t1.changeDataFeed == false)
        #expect(t1.latestVersion == 0)
    }

    @Test func filtersByCatalogAndSchemaWithParameters() throws {
        let h = try SimHarness()
        let client = try h.client()
        let onlyOther = try Discovery.run(client: client, catalog: "other")
        #expect(onlyOther.catalogs.map(\.name) == ["other"])
        #expect(onlyOther.allTables.map(\.name.description) == ["other.s.t1"])

        let crm = try Discovery.run(client: client, catalog: "MAIN", schema: "crm", details: false)
        #expect(crm.catalogs.map(\.name) == ["main"])
        #expect(crm.catalogs[0].schemas.map(\.name) == ["crm"])
        #expect(crm.allTables.count == 4)
        // details: false skips the per-table statements.
        #expect(crm.allTables.allSatisfy { $0.table.changeDataFeed == nil && $0.table.latestVersion == nil })

        // A schema name that exists in one catalog only; catalogs without it are left out.
        let s = try Discovery.run(client: client, schema: "s", details: false)
        #expect(s.catalogs.map(\.name) == ["other"])

        // Values travel as parameters: a hostile value matches nothing instead of changing the SQL.
        let hostile = try Discovery.run(client: client, catalog: "main' OR '1'='1", details: false)
        #expect(hostile.catalogs.isEmpty)
        let none = try Discovery.run(client: client, catalog: "main", schema: "nope", details: false)
        #expect(none.catalogs.isEmpty)
    }

    @Test func privilegeFilteringComesFromTheServer() throws {
        let h = try SimHarness()
        let nothing = try Discovery.run(client: try h.client(token: "dapi-nogrants"))
        #expect(nothing.catalogs.isEmpty)
        #expect(nothing.renderTree().contains("no catalogs visible"))

        let crmOnly = try Discovery.run(client: try h.client(token: "dapi-crm"))
        #expect(crmOnly.allTables.map(\.name.description) == ["main.crm.customers"])
    }

    @Test func jsonFormIsStableAndVersioned() throws {
        let h = try SimHarness()
        let result = try Discovery.run(client: try h.client(), catalog: "main", schema: "crm")
        let bytes = result.json()
        let root = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(root["format"] as? String == "cdfsync-discovery/1")
        #expect(Set(root.keys) == ["format", "catalogs"])
        let catalogs = try #require(root["catalogs"] as? [[String: Any]])
        #expect(catalogs.count == 1)
        #expect(Set(catalogs[0].keys) == ["name", "schemas"])
        let schemas = try #require(catalogs[0]["schemas"] as? [[String: Any]])
        #expect(Set(schemas[0].keys) == ["name", "tables"])
        let tables = try #require(schemas[0]["tables"] as? [[String: Any]])
        for t in tables {
            #expect(Set(t.keys) == ["name", "type", "format", "change_data_feed", "latest_version", "columns"])
        }
        let view = try #require(tables.first { $0["name"] as? String == "opted_in" })
        #expect(view["change_data_feed"] is NSNull)
        #expect(view["latest_version"] is NSNull)
        #expect(view["format"] is NSNull)
        let customers = try #require(tables.first { $0["name"] as? String == "customers" })
        #expect(customers["change_data_feed"] as? Bool == true)
        #expect((customers["latest_version"] as? NSNumber)?.intValue == 2)
        let cols = try #require(customers["columns"] as? [[String: Any]])
        #expect(Set(cols[0].keys) == ["name", "type", "nullable", "position"])
        #expect(cols[0]["name"] as? String == "id")
        #expect(cols[0]["nullable"] as? Bool == false)
        #expect((cols[0]["position"] as? NSNumber)?.intValue == 1)
        // Same workspace, same bytes.
        #expect(try Discovery.run(client: try h.client(), catalog: "main", schema: "crm").json() == bytes)
    }

    @Test func treeRendering() throws {
        let h = try SimHarness()
        let text = try Discovery.run(client: try h.client(), catalog: "main").renderTree()
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.first == "main/")
        #expect(lines.contains("  crm/"))
        #expect(lines.contains("    customers  [MANAGED, DELTA, CDF on, version 2]"))
        #expect(lines.contains("    plain  [MANAGED, DELTA, CDF off, version 1]"))
        #expect(lines.contains("    opted_in  [VIEW]"))
        #expect(lines.contains("      id     bigint NOT NULL"))
        #expect(lines.contains("  secret/"))
        #expect(lines.contains("    (no tables visible)"))
    }

    @Test func waitsForAStoppedWarehouse() throws {
        let h = try SimHarness()
        let client = try h.client(warehouse: coldWarehouse)
        let before = try WarehousesClient(settings: try h.settings(warehouse: coldWarehouse)).warehouse()
        #expect(before.state == "STOPPED")
        let started = Date()
        let result = try Discovery.run(client: client, catalog: "other", details: false)
        #expect(result.allTables.count == 1)
        // The first statement waited (PENDING) for the 1 s warehouse start.
        #expect(Date().timeIntervalSince(started) >= 0.9)
        #expect(try WarehousesClient(settings: try h.settings(warehouse: coldWarehouse)).warehouse().state == "RUNNING")
    }

    @Test func authenticationFailureIsNotSwallowed() throws {
        let h = try SimHarness()
        let error = #expect(throws: DatabricksError.self) { try Discovery.run(client: try h.client(token: "dapi-wrong")) }
        #expect(error?.category == .authenticationFailed)
    }
}
