// cdfsync-test-child: the second process of cdfsync's storage tests (KillTests, SavedFilterTests), run by them as
//
//     CDFSYNC_TEST_CHILD=<mode> cdfsync-test-child <mode> <store directory>
//
// It is not a product and is not installed; `swift build --build-tests` builds it next to the test bundle, where the
// tests find it (CDFSyncTestSupport.BuiltProduct). It writes into the store it is given, so it refuses to run unless
// the guard variable names the mode: typing its name with a path does nothing. Modes: CDFSyncTestSupport.TestChild.

import CDFSyncStorage
import CDFSyncTestSupport
import Foundation

func fail(_ message: String, status: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("cdfsync-test-child: \(message)\n".utf8))
    exit(status)
}

let arguments = CommandLine.arguments.dropFirst()
let modes = TestChild.Mode.allCases.map(\.rawValue).joined(separator: ", ")
guard arguments.count == 2, let mode = TestChild.Mode(rawValue: arguments.first ?? "") else {
    fail("usage: \(TestChild.guardVariable)=<mode> cdfsync-test-child <mode> <store directory> (modes: \(modes))",
        status: 64)
}
guard ProcessInfo.processInfo.environment[TestChild.guardVariable] == mode.rawValue else {
    fail("the other process of cdfsync's storage tests; it writes into the store it is given, so it runs only with "
        + "\(TestChild.guardVariable)=\(mode.rawValue) set (the tests set it)", status: 64)
}
let directory = arguments.last ?? ""
var isDirectory: ObjCBool = false
guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
    fail("\(directory): no such directory (the test creates the store's directory first)", status: 64)
}

do {
    switch mode {
    case .applyUntilKilled:
        let store = try PanelStore(directory: directory)
        for b in 0..<100_000 {
            _ = try store.apply(
                TestChild.applyLoopBatch(b), scope: "s", pipeline: "p", checkpoint: .init(tableVersion: Int64(b)))
            FileHandle.standardOutput.write(Data("applied \(b)\n".utf8))
        }
    case .writeAKeyAsReader:
        do {
            _ = try PanelStore(directory: directory)
            fail("opening the store as a second writer was not refused")
        } catch let error as StorageError where error.code == .inUse {
            // The writer lock held by the test: what a second writer must get.
        }
        let store = try PanelStore(directory: directory, access: .reader)
        _ = try store.apply([TestChild.writeAKeyChange], scope: "s", pipeline: "p", checkpoint: nil)
    }
} catch {
    fail("\(mode.rawValue) in \(directory): \(error)")
}
