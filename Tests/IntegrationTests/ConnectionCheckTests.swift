import CDFSyncClient
import CDFSyncEngine
import CDFSyncTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import WarehouseSimulator
import Logging

@Suite("cdfsync connection test, step by step, against the simulator")
struct ConnectionCheckTests {
    func tester(_ settings: ConnectionSettings) -> ConnectionTester {
        var t = ConnectionTester(settings: settings)
        t.waiter = WarehouseWaiter(timeout: 30, interval: { _ in 0.2 })
        t.statementDeadline = 30
        return t
    }

    @Test func allChecksPassWithAGoodToken() throws {
        let h = try SimHarness()
        var seen: [ConnectionCheck] = []
        var t = tester(try h.settings())
        t.onCheck = { seen.append($0) }
        let report = t.run()
        #expect(report.failure == nil, "\(report.render())")
        #expect(report.passed)
        #expect(report.checks.map(\.step) == ConnectionCheck.Step.allCases)
        #expect(seen == report.checks)
        #expect(report.checks.allSatisfy { $0.passed && $0.milliseconds >= 0 })
        #expect(report.checks.last?.detail == "2 catalogs: main, other")
        let text = report.render()
        #expect(text.contains("✓ host reachable"))
        #expect(text.contains("✓ SELECT 1"))
        #expect(!text.contains("✗"))
        #expect(!text.contains("dapi-good"))
    }

    @Test func oauthM2MPassesAndABadClientSecretFailsAuthentication() throws {
        let h = try SimHarness()
        let good = try ConnectionSettings(host: h.host, warehouseID: runningWarehouse,
            authentication: .oauthM2M(clientID: "sp-client", clientSecret: Secret("sp-secret")))
        let ok = tester(good).run()
        #expect(ok.passed, "\(ok.render())")

        let bad = try ConnectionSettings(host: h.host, warehouseID: runningWarehouse,
            authentication: .oauthM2M(clientID: "sp-client", clientSecret: Secret("not-the-secret")))
        let report = tester(bad).run()
        #expect(report.checks.map(\.step) == [.reachable, .authenticated])
        #expect(report.checks.last?.passed == false)
        #expect(report.failure?.category == .authenticationFailed)
        #expect(!report.render().contains("not-the-secret"))
    }

    @Test func connectionRefusedFailsTheFirstStep() throws {
        // A port that nothing listens on: bound (so no one else gets it) but never listening.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in bind(fd, p, len) == 0 && getsockname(fd, p, &len) == 0 }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let settings = try ConnectionSettings(host: "http://127.0.0.1:\(port)", warehouseID: runningWarehouse,
            authentication: .personalAccessToken(Secret("dapi-good")))
        let report = tester(settings).run()
        #expect(report.checks.count == 1)
        #expect(report.checks[0].step == .reachable)
        #expect(!report.checks[0].passed)
        #expect(report.failure?.category == .hostUnreachable)
        #expect(report.failure?.remedy.contains("host and port") == true)
        #expect(report.render().contains("✗ host reachable"))
        #expect(report.render().contains("remedy: "))
    }

    @Test func badTokenFailsAuthenticationWithTheRemedy() throws {
        let h = try SimHarness()
        let report = tester(try h.settings(token: "dapi-revoked")).run()
        #expect(report.checks.map(\.passed) == [true, false])
        #expect(report.checks[1].step == .authenticated)
        #expect(report.failure?.category == .authenticationFailed)
        #expect(report.failure?.httpStatus == 403)
        #expect(report.failure?.message.contains("Invalid access token") == true)
        #expect(report.failure?.remedy.contains("personal access token") == true)
        #expect(!report.render().contains("dapi-revoked"))
    }

    @Test func noCanUseOnTheWarehouseIsPermissionDenied() throws {
        let h = try SimHarness()
        let report = tester(try h.settings(token: "dapi-nowh")).run()
        #expect(report.checks.map(\.step) == [.reachable, .authenticated, .warehouse])
        #expect(report.checks.map(\.passed) == [true, true, false])
        #expect(report.failure?.category == .permissionDenied)
        #expect(report.failure?.remedy.contains("CAN USE") == true)
    }

    @Test func canViewWithoutCanUseFailsAtTheStatement() throws {
        let h = try SimHarness()
        let report = tester(try h.settings(token: "dapi-viewer")).run()
        #expect(report.checks.map(\.step) == [.reachable, .authenticated, .warehouse, .statement])
        #expect(report.checks.map(\.passed) == [true, true, true, false])
        #expect(report.failure?.category == .permissionDenied)
        #expect(report.failure?.remedy.contains("CAN USE") == true)
    }

    @Test func unknownWarehouseIsReported() throws {
        let h = try SimHarness()
        let report = tester(try h.settings(warehouse: "ffffffffffffffff")).run()
        #expect(report.checks.last?.step == .warehouse, "\(report.render())")
        #expect(report.failure?.category == .warehouseNotFound)
    }

    @Test func stoppedWarehouseIsStartedAndWaitedFor() throws {
        let h = try SimHarness()
        let log = LogCapture()
        var t = tester(try h.settings(warehouse: coldWarehouse))
        t.logger = log.logger
        let report = t.run()
        let progress = log.messages
        #expect(report.passed, "\(report.render())")
        let step = try #require(report.checks.first { $0.step == .warehouse })
        #expect(step.detail.contains("started"))
        #expect(step.milliseconds >= 500)  // start_seconds is 1
        #expect(progress.contains { $0.hasPrefix("warehouse starting (") })
        let info = try WarehousesClient(settings: try h.settings(warehouse: coldWarehouse)).warehouse()
        #expect(info.state == "RUNNING")
    }

    @Test func stoppedWarehouseFailsWhenStartingIsNotAllowed() throws {
        let h = try SimHarness()
        var t = tester(try h.settings(warehouse: coldWarehouse))
        t.startWarehouse = false
        let report = t.run()
        #expect(report.checks.last?.step == .warehouse)
        #expect(report.failure?.category == .warehouseStopped)
        #expect(report.failure?.remedy.contains("--start-warehouse") == true)
        let info = try WarehousesClient(settings: try h.settings(warehouse: coldWarehouse)).warehouse()
        #expect(info.state == "STOPPED")
    }

    @Test func principalWithNoGrantsSeesNoCatalogs() throws {
        let h = try SimHarness()
        let report = tester(try h.settings(token: "dapi-nogrants")).run()
        #expect(report.checks.map(\.step) == ConnectionCheck.Step.allCases)
        #expect(report.checks.map(\.passed) == [true, true, true, true, false])
        #expect(report.failure?.category == .permissionDenied)
        #expect(report.failure?.remedy.contains("USE CATALOG") == true)
        #expect(!report.passed)
    }

    @Test func savedConnectionResolvesAndPasses() throws {
        let h = try SimHarness()
        let dir = makeConfigDirectory()
        let store = try ConnectionStore(directory: dir, environment: [:])
        try store.add(try SavedConnection(name: "sim", host: h.host, warehouseID: runningWarehouse, secret: .encrypted),
            secret: Secret("dapi-good"))
        let report = tester(try store.resolve("sim")).run()
        #expect(report.passed, "\(report.render())")
    }
}
