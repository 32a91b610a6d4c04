import CDFSyncClient
import Foundation
import Synchronization
import Testing
import WarehouseSimulator

@Suite("Warehouses API client and the RUNNING waiter")
struct ConnectionWarehouseTests {
    @Test func readsStartsAndWaitsForAWarehouse() throws {
        let h = try SimHarness()
        let client = WarehousesClient(settings: try h.settings(warehouse: coldWarehouse))
        let before = try client.warehouse()
        #expect(before.id == coldWarehouse)
        #expect(before.name == "Cold Warehouse")
        #expect(before.state == "STOPPED")
        try client.start()
        var progress: [String] = []
        let started = Date()
        let info = try client.waitUntilRunning(
            waiter: WarehouseWaiter(timeout: 30, interval: { _ in 0.2 }), onProgress: { progress.append($0) })
        #expect(info.state == "RUNNING")
        #expect(info.healthStatus == "HEALTHY")
        #expect(Date().timeIntervalSince(started) >= 0.5)
        #expect(!progress.isEmpty)
        #expect(progress.allSatisfy { $0.hasPrefix("warehouse starting (") && $0.hasSuffix("s)") })
        // Starting a running warehouse is harmless.
        try client.start()
        #expect(try client.warehouse().state == "RUNNING")
    }

    @Test func errorsAreClassified() throws {
        let h = try SimHarness()
        let unknown = try #require(throws: DatabricksError.self) {
            try WarehousesClient(settings: try h.settings(warehouse: "ffffffffffffffff")).warehouse()
        }
        #expect(unknown.category == .warehouseNotFound)
        let denied = try #require(throws: DatabricksError.self) {
            try WarehousesClient(settings: try h.settings(token: "dapi-nowh")).warehouse()
        }
        #expect(denied.category == .permissionDenied)
        let badToken = try #require(throws: DatabricksError.self) {
            try WarehousesClient(settings: try h.settings(token: "nope")).start()
        }
        #expect(badToken.category == .authenticationFailed)
    }

    @Test func probeNeedsNoCredential() throws {
        let h = try SimHarness()
        #expect(try WarehousesClient(settings: try h.settings(token: "nope")).probeReachability() == 401)
    }

    // The waiter's rules, with a scripted sequence of states and a fake clock.

    final class Script: @unchecked Sendable {
        var states: [String]
        var now = Date(timeIntervalSince1970: 0)
        var polls = 0
        init(_ states: [String]) { self.states = states }
        func next() -> WarehouseInfo {
            polls += 1
            return WarehouseInfo(id: "w1", state: states.count > 1 ? states.removeFirst() : states[0])
        }
    }

    func waiter(_ s: Script, timeout: Double = 60) -> WarehouseWaiter {
        WarehouseWaiter(timeout: timeout, interval: { _ in 5 }, stoppedGrace: 2,
            sleep: { s.now = s.now.addingTimeInterval($0) }, now: { s.now })
    }

    @Test func toleratesALaggingFirstStoppedAfterAStart() throws {
        let s = Script(["STOPPED", "STARTING", "STARTING", "RUNNING"])
        let info = try waiter(s).wait(afterStart: true, poll: { s.next() })
        #expect(info.state == "RUNNING")
        #expect(s.polls == 4)
    }

    @Test func failsWhenTheWarehouseStaysStopped() throws {
        let s = Script(["STOPPED", "STOPPED", "STOPPED"])
        let e = try #require(throws: DatabricksError.self) { try waiter(s).wait(afterStart: true, poll: { s.next() }) }
        #expect(e.category == .warehouseStopped)
        #expect(s.polls == 3)
    }

    @Test func failsOnStoppedAfterStartingWasSeen() throws {
        let s = Script(["STARTING", "STOPPED", "RUNNING"])
        let e = try #require(throws: DatabricksError.self) { try waiter(s).wait(afterStart: true, poll: { s.next() }) }
        #expect(e.category == .warehouseStopped)
    }

    @Test func stoppedWithoutAStartRequestFailsAtOnce() throws {
        let s = Script(["STOPPED", "RUNNING"])
        let e = try #require(throws: DatabricksError.self) { try waiter(s).wait(afterStart: false, poll: { s.next() }) }
        #expect(e.category == .warehouseStopped)
        #expect(s.polls == 1)
    }

    @Test func deletedWarehouseFails() throws {
        let s = Script(["STARTING", "DELETED"])
        let e = try #require(throws: DatabricksError.self) { try waiter(s).wait(afterStart: true, poll: { s.next() }) }
        #expect(e.category == .warehouseNotFound)
    }

    @Test func deadlineIsWallClock() throws {
        let s = Script(["STARTING"])
        var progress: [String] = []
        let e = try #require(throws: DatabricksError.self) {
            try waiter(s, timeout: 60).wait(afterStart: true, poll: {
                s.now = s.now.addingTimeInterval(2)  // each GET itself takes 2 s
                return s.next()
            }, onProgress: { progress.append($0) })
        }
        #expect(e.category == .warehouseStartTimeout)
        // 2 s per GET + 5 s sleep: the deadline is reached after 9 polls, not after 12 sleeps.
        #expect(s.polls <= 10)
        #expect(progress.first == "warehouse starting (2s)")
        #expect(e.message.contains("still STARTING"))
    }
}
