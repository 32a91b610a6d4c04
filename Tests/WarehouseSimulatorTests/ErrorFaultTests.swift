import Foundation
import Testing
@testable import WarehouseSimulator

/// The simulator answers that let clients be tested on error causes: a queued statement, a proxy's page, opaque chunk
/// links, and each class a vacuumed range fails with.
@Suite("Simulator: queue, proxy pages, chunk link queries, vacuum classes")
struct ErrorFaultTests {
    @Test func aQueuedStatementAnswersPendingThenRunningThenSucceeded() async throws {
        let h = try Harness()
        h.sim.addFault(Fault(match: .init(statementContains: "customers"), count: 1, kind: .queue, polls: 2))
        #expect(state(try await h.execute("SELECT 1")) == "SUCCEEDED")  // no match
        let first = try await h.execute("SELECT id FROM main.crm.customers", extra: ["wait_timeout": "10s"])
        #expect(state(first) == "PENDING")  // at once: the wait does not block a queued statement
        let id = first["statement_id"] as! String
        var states: [String?] = []
        for _ in 0..<3 { states.append(state(try await h.call("GET", "/api/2.0/sql/statements/\(id)").json)) }
        #expect(states == ["PENDING", "RUNNING", "SUCCEEDED"])
        #expect(state(try await h.execute("SELECT id FROM main.crm.customers")) == "SUCCEEDED")  // count 1: used up
        let added = try await h.call("POST", "/_sim/faults", json: ["kind": "queue", "polls": 3], token: "sim-admin")
        #expect(added.status == 200)
    }

    @Test func aProxyStatusFaultAnswersAnHTMLPage() async throws {
        let h = try Harness()
        h.sim.addFault(Fault(match: .init(method: "POST"), count: 1, kind: .proxyStatus, status: 504))
        let r = try await h.call("POST", "/api/2.0/sql/statements",
            json: ["statement": "SELECT 1", "warehouse_id": Harness.warehouse])
        #expect(r.status == 504)
        #expect(r.header("content-type") == "text/html")
        #expect(r.text.contains("<title>504 Gateway Timeout</title>"))
    }

    @Test func chunkLinksCarryARequiredQueryWhenConfigured() async throws {
        var config = Simulator.Configuration(rowsPerChunk: 1)
        config.requireChunkLinkQuery = true
        let h = try Harness(configuration: config)
        let r = try await h.execute("SELECT id FROM main.crm.customers")
        let link = (r["result"] as! [String: Any])["next_chunk_internal_link"] as! String
        #expect(link.hasSuffix("/result/chunks/1?row_offset=1"))
        #expect(try await h.call("GET", link).status == 200)
        let bare = String(link[..<link.firstIndex(of: "?")!])
        #expect(try await h.call("GET", bare).status == 400)
        #expect(try await h.rows("SELECT id FROM main.crm.customers").rows.count == 3)
    }

    @Test func theVacuumEndpointSetsTheRetainedVersionAndTheErrorClass() async throws {
        let h = try Harness()
        let table = "main.crm.vacuumed"
        #expect(errorClass(try await h.execute("SELECT * FROM table_changes('\(table)', 1, 3)")) == "DELTA_VERSION_NOT_FOUND")
        for (cls, sqlState) in VacuumError.classes {
            let r = try await h.call("POST", "/_sim/tables/\(table)/vacuum",
                json: ["earliest_retained_version": 2, "error_class": cls], token: "sim-admin")
            #expect(r.status == 200, "\(r.text)")
            let failed = try await h.execute("SELECT * FROM table_changes('\(table)', 1, 3)")
            #expect(errorClass(failed) == cls)
            #expect((failed["status"] as? [String: Any])?["sql_state"] as? String == sqlState)
        }
        #expect(try await h.rows("SELECT * FROM table_changes('\(table)', 2, 3)").rows.count == 2)
        let unknown = try await h.call("POST", "/_sim/tables/\(table)/vacuum",
            json: ["earliest_retained_version": 2, "error_class": "NOT_A_CLASS"], token: "sim-admin")
        #expect(unknown.status == 400)
        let beyond = try await h.call("POST", "/_sim/tables/\(table)/vacuum", json: ["earliest_retained_version": 9],
            token: "sim-admin")
        #expect(beyond.status == 400)
    }
}
