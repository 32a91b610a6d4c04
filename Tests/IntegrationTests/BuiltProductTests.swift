import CDFSyncTestSupport
import Foundation
import Testing

/// The CLI tests run the executables built with the test bundle from the current sources: found next to the bundle
/// (never an older build elsewhere), and refused — naming the binary, the source file and both times — when a
/// source file changed after the binary was linked and no build has compiled it since.
@Suite("Built executables the tests run")
struct BuiltProductTests {
    @Test func theExecutablesAreTheOnesNextToTheTestBundle() throws {
        let products = BuiltProduct.productsDirectory
        #expect(try BuiltProduct.cdfsync.path == products.appendingPathComponent("cdfsync").path)
        #expect(try BuiltProduct.dbsqlSim.path == products.appendingPathComponent("dbsql-sim").path)
        #expect(try BuiltProduct.testChild.path == products.appendingPathComponent("cdfsync-test-child").path)
        // The test bundle itself sits in that directory.
        #expect(FileManager.default.fileExists(atPath: products.appendingPathComponent(
            URL(fileURLWithPath: CommandLine.arguments[0]).lastPathComponent).path))
    }

    @Test func everyTargetOfTheExecutableIsASourceOfIt() {
        let cdfsync = Set(BuiltProduct.cdfsync.sources.map { $0.target })
        #expect(cdfsync == ["cdfsync", "CDFSyncService", "CDFSyncEngine", "CDFSyncClient", "CDFSyncStorage",
                            "CDFSyncCore", "CCurl", "CLMDB", "CZstd"])
        #expect(!cdfsync.contains("WarehouseSimulator"), "an edit of the simulator does not make cdfsync stale")
        #expect(Set(BuiltProduct.dbsqlSim.sources.map { $0.target })
            == ["dbsql-sim", "WarehouseSimulator", "CDFSyncCore"])
        for product in [BuiltProduct.cdfsync, .dbsqlSim, .testChild] {
            for (_, directory) in product.sources {
                var isDirectory: ObjCBool = false
                #expect(FileManager.default.fileExists(
                    atPath: repositoryRoot.appendingPathComponent(directory).path, isDirectory: &isDirectory)
                    && isDirectory.boolValue, "\(directory) of \(product.name)")
            }
        }
    }

    /// A repository with one target (`my-tool`: `a.swift` and a header) and a products directory with its binary,
    /// each file given a modification time.
    struct FakeBuild {
        let dir = TempDir("built-product")
        var repository: URL { URL(fileURLWithPath: dir.sub("repo")) }
        var products: URL { URL(fileURLWithPath: dir.sub("products")) }
        let sources = [(target: "my-tool", directory: "Sources/my-tool")]

        init() throws {
            for d in ["repo/Sources/my-tool/Sub", "products/my_tool.build"] {
                try FileManager.default.createDirectory(atPath: dir.sub(d), withIntermediateDirectories: true)
            }
            try set("repo/Sources/my-tool/Sub/a.swift", at: 900)
            try set("repo/Sources/my-tool/shim.h", at: 900)
            try set("products/my-tool", at: 1000)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.sub("products/my-tool"))
        }

        /// Creates (if need be) `path` under the directory and sets its modification time to `seconds`.
        func set(_ path: String, at seconds: Double) throws {
            let file = dir.sub(path)
            if !FileManager.default.fileExists(atPath: file) {
                #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
            }
            try FileManager.default.setAttributes(
                [.modificationDate: Date(timeIntervalSince1970: seconds)], ofItemAtPath: file)
        }

        func check() -> Result<String, BuiltProductError> {
            BuiltProduct.check(name: "my-tool", sources: sources, repository: repository, products: products)
        }

        /// The file a stale result names, or nil when it is not stale.
        func staleSource() -> String? {
            if case .failure(.stale(_, _, _, let source, _)) = check() { return source }
            return nil
        }
    }

    @Test func aSourceChangedAfterTheLinkIsRefusedUntilABuildCompiledIt() throws {
        let b = try FakeBuild()
        #expect(try b.check().get() == b.products.appendingPathComponent("my-tool").path)

        // Edited after the link, not compiled since: refused, naming the file and both times.
        try b.set("repo/Sources/my-tool/Sub/a.swift", at: 1100)
        #expect(b.staleSource() == "Sources/my-tool/Sub/a.swift")
        let message = "\(try #require(b.check().failure))"
        #expect(message.contains(b.products.appendingPathComponent("my-tool").path), "\(message)")
        #expect(message.contains("(modified 1970-01-01T00:16:40.000Z)"), "the binary's time: \(message)")
        #expect(message.contains("(modified 1970-01-01T00:18:20.000Z, not compiled since)"), "\(message)")
        #expect(message.contains("swift build --build-tests"), "\(message)")

        // A compilation before the edit does not count; one after it does (the object file came out the same, so
        // the build did not link again: the binary holds the file's current content).
        try b.set("products/my_tool.build/a.d", at: 1050)
        #expect(b.staleSource() == "Sources/my-tool/Sub/a.swift")
        try b.set("products/my_tool.build/a.d", at: 1150)
        #expect((try? b.check().get()) != nil)

        // A header has no compilation of its own to tell: any change after the link counts.
        try b.set("repo/Sources/my-tool/shim.h", at: 1100)
        #expect(b.staleSource() == "Sources/my-tool/shim.h")
    }

    @Test func aMissingBinaryOrSourceTreeIsNamed() throws {
        let b = try FakeBuild()
        let none = BuiltProduct.check(name: "other-tool", sources: b.sources, repository: b.repository,
            products: b.products)
        guard case .failure(.missing(_, let path)) = none else {
            Issue.record("a missing binary was accepted: \(none)")
            return
        }
        #expect(path == b.products.appendingPathComponent("other-tool").path)
        let nothing = BuiltProduct.check(name: "my-tool", sources: [("x", "Sources/x")], repository: b.repository,
            products: b.products)
        guard case .failure(.noSources) = nothing else {
            Issue.record("a product without sources was accepted: \(nothing)")
            return
        }
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
