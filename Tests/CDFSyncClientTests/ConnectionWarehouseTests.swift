import CDFSyncClient
import CDFSyncTestSupport
import Foundation
import Logging
import Testing

/// The RUNNING waiter's rules (the Warehouses API client against the simulator: IntegrationTests'
/// WarehousesAPITests).
@Suite("The RUNNING waiter")
struct ConnectionWarehouseTests {
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
        let log = LogCapture()
        let e = try #require(throws: DatabricksError.self) {
            try waiter(s, timeout: 60).wait(afterStart: true, poll: {
                s.now = s.now.addingTimeInterval(2)  // each GET itself takes 2 s
                return s.next()
            }, logger: log.logger)
        }
        let progress = log.messages
        #expect(e.category == .warehouseStartTimeout)
        // 2 s per GET + 5 s sleep: the deadline is reached after 9 polls, not after 12 sleeps.
        #expect(s.polls <= 10)
        #expect(progress.first == "warehouse starting (2s)")
        #expect(e.message.contains("still STARTING"))
    }
}
