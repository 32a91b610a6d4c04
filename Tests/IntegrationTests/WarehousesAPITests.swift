import CDFSyncClient
import CDFSyncTestSupport
import Foundation
import Logging
import Testing

/// The Warehouses API client against the simulator (the waiter's rules are unit-tested in CDFSyncClientTests'
/// ConnectionWarehouseTests).
@Suite("Warehouses API client")
struct WarehousesAPITests {
    @Test func readsStartsAndWaitsForAWarehouse() throws {
        let h = try SimHarness()
        let client = WarehousesClient(settings: try h.settings(warehouse: coldWarehouse))
        let before = try client.warehouse()
        #expect(before.id == coldWarehouse)
        #expect(before.name == "Cold Warehouse")
        #expect(before.state == "STOPPED")
        try client.start()
        let log = LogCapture()
        let started = Date()
        let info = try client.waitUntilRunning(
            waiter: WarehouseWaiter(timeout: 30, interval: { _ in 0.2 }), logger: log.logger)
        let progress = log.messages
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
}
