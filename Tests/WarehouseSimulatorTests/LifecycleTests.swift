import Foundation
import Testing
@testable import WarehouseSimulator

@Suite struct LifecycleTests {
    static let sql = "SELECT id FROM main.crm.customers"

    @Test func statementRunsOnTheSimulatorClock() async throws {
        let clock = SimulatorClock.manual()
        let h = try Harness(configuration: .init(rowsPerChunk: 10, executionDelay: 5), clock: clock)
        let r = try await h.execute(Self.sql, extra: ["wait_timeout": "0s"])
        #expect(state(r) == "RUNNING")
        #expect(Set(r.keys) == ["statement_id", "status"])
        let id = r["statement_id"] as! String
        let early = try await h.call("GET", "/api/2.0/sql/statements/\(id)/result/chunks/0")
        #expect(early.status == 400)
        clock.advance(seconds: 5)
        let g = try await h.call("GET", "/api/2.0/sql/statements/\(id)").json
        #expect(state(g) == "SUCCEEDED")
        #expect(((g["result"] as? [String: Any])?["data_array"] as? [[Any]])?.count == 3)
        // Results expire an hour after success; the statement is forgotten 12 hours after.
        clock.advance(seconds: 3600)
        #expect(state(try await h.call("GET", "/api/2.0/sql/statements/\(id)").json) == "CLOSED")
        #expect(try await h.call("GET", "/api/2.0/sql/statements/\(id)/result/chunks/0").status == 404)
        clock.advance(seconds: 12 * 3600)
        let gone = try await h.call("GET", "/api/2.0/sql/statements/\(id)")
        #expect(gone.status == 404)
        #expect(gone.json["error_code"] as? String == "NOT_FOUND")
    }

    @Test func waitTimeoutWithCancelCancels() async throws {
        let clock = SimulatorClock.manual()
        let h = try Harness(configuration: .init(executionDelay: 30), clock: clock)
        let r = try await h.execute(Self.sql, extra: ["wait_timeout": "10s", "on_wait_timeout": "CANCEL"])
        #expect(state(r) == "CANCELED")
        let cont = try await h.execute(Self.sql, extra: ["wait_timeout": "10s", "on_wait_timeout": "CONTINUE"])
        #expect(state(cont) == "RUNNING")
    }

    @Test func waitTimeoutBlocksUntilDoneInRealTime() async throws {
        let h = try Harness(configuration: .init(executionDelay: 0.3))
        let start = Date()
        let r = try await h.execute(Self.sql, extra: ["wait_timeout": "5s"])
        #expect(state(r) == "SUCCEEDED")
        #expect(Date().timeIntervalSince(start) >= 0.25)
        let quick = try await h.execute(Self.sql, extra: ["wait_timeout": "0s"])
        #expect(state(quick) == "RUNNING")
    }

    @Test func cancelAndCloseAnswerEmptyObjects() async throws {
        let clock = SimulatorClock.manual()
        let h = try Harness(configuration: .init(executionDelay: 30), clock: clock)
        let id = try await h.execute(Self.sql, extra: ["wait_timeout": "0s"])["statement_id"] as! String
        let c = try await h.call("POST", "/api/2.0/sql/statements/\(id)/cancel", json: [String: Any]())
        #expect(c.status == 200 && c.text == "{}")
        #expect(state(try await h.call("GET", "/api/2.0/sql/statements/\(id)").json) == "CANCELED")
        clock.advance(seconds: 60)
        #expect(state(try await h.call("GET", "/api/2.0/sql/statements/\(id)").json) == "CANCELED")

        let done = try await h.execute(Self.sql, extra: ["wait_timeout": "0s"])["statement_id"] as! String
        clock.advance(seconds: 30)
        let d = try await h.call("DELETE", "/api/2.0/sql/statements/\(done)")
        #expect(d.status == 200 && d.text == "{}")
        #expect(state(try await h.call("GET", "/api/2.0/sql/statements/\(done)").json) == "CLOSED")
        #expect(try await h.call("GET", "/api/2.0/sql/statements/\(done)/result/chunks/0").status == 404)
        #expect(try await h.call("POST", "/api/2.0/sql/statements/nope/cancel", json: [String: Any]()).status == 404)
    }

    @Test func stoppedWarehouseStartsAndStatementsWait() async throws {
        let clock = SimulatorClock.manual()
        var ws = try Harness.minimal()
        ws.warehouses[0].state = "STOPPED"
        let h = try Harness(workspace: ws, clock: clock)
        let r = try await h.execute(Self.sql, extra: ["wait_timeout": "0s"])
        #expect(state(r) == "PENDING")
        let w = try await h.call("GET", "/api/2.0/sql/warehouses/\(Harness.warehouse)").json
        #expect(w["state"] as? String == "STARTING")
        clock.advance(seconds: 2)
        #expect(state(try await h.call("GET", "/api/2.0/sql/statements/\(r["statement_id"] as! String)").json) == "SUCCEEDED")
        #expect(try await h.call("GET", "/api/2.0/sql/warehouses/\(Harness.warehouse)").json["state"] as? String == "RUNNING")
    }

    @Test func warehouseAPIStateMachineAndPermissions() async throws {
        let clock = SimulatorClock.manual()
        let h = try Harness(clock: clock)
        let list = try await h.call("GET", "/api/2.0/sql/warehouses").json["warehouses"] as! [[String: Any]]
        #expect(list.map { $0["id"] as! String } == [Harness.warehouse])
        #expect((list[0]["odbc_params"] as? [String: Any])?["path"] as? String == "/sql/1.0/warehouses/\(Harness.warehouse)")
        // CAN_USE may start but not stop.
        #expect(try await h.call("POST", "/api/2.0/sql/warehouses/\(Harness.warehouse)/stop", json: [String: Any]()).status == 403)
        try h.sim.setWarehouseState(id: Harness.warehouse, state: "STOPPED")
        let s = try await h.call("POST", "/api/2.0/sql/warehouses/\(Harness.warehouse)/start", json: [String: Any]())
        #expect(s.status == 200 && s.text == "{}")
        #expect(try await h.call("GET", "/api/2.0/sql/warehouses/\(Harness.warehouse)").json["state"] as? String == "STARTING")
        clock.advance(seconds: 2)
        #expect(try await h.call("GET", "/api/2.0/sql/warehouses/\(Harness.warehouse)").json["state"] as? String == "RUNNING")
        let admin = try await h.call("POST", "/_sim/warehouses/\(Harness.warehouse)/state", json: ["state": "STOPPING"], token: "sim-admin")
        #expect(admin.status == 200)
        clock.advance(seconds: 1)
        #expect(try await h.call("GET", "/api/2.0/sql/warehouses/\(Harness.warehouse)").json["state"] as? String == "STOPPED")
        let unknown = try await h.call("GET", "/api/2.0/sql/warehouses/ffffffffffffffff")
        #expect(unknown.status == 404)
        #expect(unknown.json["error_code"] as? String == "RESOURCE_DOES_NOT_EXIST")
    }

    @Test func requestValidation() async throws {
        let h = try Harness()
        func post(_ extra: [String: Any], token: String? = nil) async throws -> Reply {
            var body: [String: Any] = ["statement": Self.sql, "warehouse_id": Harness.warehouse]
            for (k, v) in extra { body[k] = v }
            return try await h.call("POST", "/api/2.0/sql/statements", json: body, token: token)
        }
        for wait in ["60s", "3s", "10", "abc"] {
            let r = try await post(["wait_timeout": wait])
            #expect(r.status == 400)
            #expect(r.json["error_code"] as? String == "INVALID_PARAMETER_VALUE")
        }
        #expect(try await post(["on_wait_timeout": "LATER"]).status == 400)
        #expect(try await post(["disposition": "INLINE", "format": "CSV"]).status == 400)
        #expect(try await post(["disposition": "INLINE", "format": "ARROW_STREAM"]).status == 400)
        let arrow = try await post(["disposition": "EXTERNAL_LINKS", "format": "ARROW_STREAM"])
        #expect(arrow.status == 501)
        #expect(arrow.json["error_code"] as? String == "NOT_IMPLEMENTED")
        #expect(try await post(["parameters": [["value": "1", "ordinal": 1]]]).status == 400)
        #expect(try await post(["parameters": [["name": "x", "value": "abc", "type": "INT"]]]).status == 400)
        #expect(try await post(["parameters": [["name": "x", "type": "ARRAY<INT>"]]]).status == 400)
        let wh = try await post(["warehouse_id": "ffffffffffffffff"])
        #expect(wh.status == 404)
        #expect(wh.json["error_code"] as? String == "RESOURCE_DOES_NOT_EXIST")
        let noUse = try await post([:], token: "dapi-nowh")
        #expect(noUse.status == 403)
        #expect(noUse.json["error_code"] as? String == "PERMISSION_DENIED")
        let garbage = try await h.call("POST", "/api/2.0/sql/statements", json: ["statement": 5])
        #expect(garbage.status == 400)
        // A NULL parameter is an absent value.
        let null = try await h.execute("SELECT id FROM main.crm.customers WHERE email = :e", params: [["name": "e"]])
        #expect((null["manifest"] as? [String: Any])?["total_row_count"] as? Int == 0)
    }

    @Test func unpolledRunningStatementsAreAbandoned() async throws {
        let clock = SimulatorClock.manual()
        let h = try Harness(configuration: .init(executionDelay: 3000), clock: clock)
        let polled = try await h.execute(LifecycleTests.sql, extra: ["wait_timeout": "0s"])["statement_id"] as! String
        let ignored = try await h.execute(LifecycleTests.sql, extra: ["wait_timeout": "0s"])["statement_id"] as! String
        for _ in 0..<4 {
            clock.advance(seconds: 600)
            #expect(state(try await h.call("GET", "/api/2.0/sql/statements/\(polled)").json) == "RUNNING")
        }
        #expect(state(try await h.call("GET", "/api/2.0/sql/statements/\(ignored)").json) == "CANCELED")
        clock.advance(seconds: 600)
        #expect(state(try await h.call("GET", "/api/2.0/sql/statements/\(polled)").json) == "SUCCEEDED")
    }
}
