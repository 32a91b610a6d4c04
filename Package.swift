// swift-tools-version: 6.1
import PackageDescription

/// Settings every Swift target shares (swift-log / Hummingbird style).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "cdfsync",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cdfsync", targets: ["cdfsync"]),
        .executable(name: "dbsql-sim", targets: ["dbsql-sim"]),
        .library(name: "CDFSyncCore", targets: ["CDFSyncCore"]),
        .library(name: "CDFSyncStorage", targets: ["CDFSyncStorage"]),
        .library(name: "CDFSyncClient", targets: ["CDFSyncClient"]),
        .library(name: "CDFSyncEngine", targets: ["CDFSyncEngine"]),
        .library(name: "WarehouseSimulator", targets: ["WarehouseSimulator"]),
        .library(name: "CDFSyncService", targets: ["CDFSyncService"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // HTTP servers only — the simulator's transport and `cdfsync serve` (CDFSyncService) — never the engine,
        // storage, client or core modules.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // `cdfsync serve` only: its metrics.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Tests only: property-based tests with shrinking (the split-invariance property).
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // System libraries: a module map plus a shim header each.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),

        // No I/O: models, JSON_ARRAY decoder, SQL building, mapping.
        .target(name: "CDFSyncCore", swiftSettings: swiftSettings),
        // LMDB environment, panel, identity index, checkpoints, outbox; zstd.
        .target(name: "CDFSyncStorage", dependencies: ["CDFSyncCore", "CLMDB", "CZstd"], swiftSettings: swiftSettings),
        // libcurl transport, auth, statement execution, chunk fetching.
        .target(
            name: "CDFSyncClient",
            dependencies: ["CDFSyncCore", "CCurl", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Sync runs: plans, apply, delivery, summaries.
        .target(
            name: "CDFSyncEngine",
            dependencies: [
                "CDFSyncCore", "CDFSyncStorage", "CDFSyncClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The Databricks SQL warehouse simulator (library).
        // Its HTTP transport is Hummingbird: routes, fault middleware, and a NIO handler for transport faults.
        .target(
            name: "WarehouseSimulator",
            dependencies: [
                "CDFSyncCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // `cdfsync serve`: the scheduler, the trigger and JSON API, the console, /metrics (Hummingbird, not in the
        // modules above).
        .target(
            name: "CDFSyncService",
            dependencies: [
                "CDFSyncEngine", "CDFSyncClient", "CDFSyncStorage", "CDFSyncCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "cdfsync",
            dependencies: [
                "CDFSyncEngine", "CDFSyncClient", "CDFSyncStorage", "CDFSyncCore", "CDFSyncService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "dbsql-sim",
            dependencies: [
                "CDFSyncCore",
                "WarehouseSimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // What the tests share: temporary directories, a running simulator, child-process runners, and the built
        // executables they run, refused when older than their sources (BuiltProduct).
        .target(
            name: "CDFSyncTestSupport",
            dependencies: [
                "CDFSyncCore", "CDFSyncStorage", "CDFSyncClient", "WarehouseSimulator",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/CDFSyncTestSupport",
            swiftSettings: swiftSettings
        ),
        // The second process of the storage tests that need one (killed mid-apply, writing beside an open store).
        // Not a product; refuses to run unless CDFSYNC_TEST_CHILD names its mode (see its main.swift).
        .executableTarget(
            name: "cdfsync-test-child",
            dependencies: ["CDFSyncTestSupport", "CDFSyncStorage"],
            path: "Tests/cdfsync-test-child",
            swiftSettings: swiftSettings
        ),

        // Unit tests, one target per module: no simulator, no built binary.
        .testTarget(name: "CDFSyncCoreTests", dependencies: ["CDFSyncCore"], exclude: ["Fixtures"], swiftSettings: swiftSettings),
        .testTarget(
            name: "CDFSyncStorageTests", dependencies: ["CDFSyncStorage", "CDFSyncTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CDFSyncClientTests",
            dependencies: [
                "CDFSyncClient", "CDFSyncCore", "CDFSyncTestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CDFSyncEngineTests",
            dependencies: ["CDFSyncEngine", "CDFSyncClient", "CDFSyncStorage", "CDFSyncCore", "CDFSyncTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WarehouseSimulatorTests",
            dependencies: [
                "WarehouseSimulator", "CDFSyncCore", "CDFSyncTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // cdfsync serve: routes through HummingbirdTesting, and a real loopback run against the simulator.
        .testTarget(
            name: "CDFSyncServiceTests",
            dependencies: [
                "CDFSyncService", "CDFSyncEngine", "CDFSyncClient", "CDFSyncStorage", "CDFSyncCore", "WarehouseSimulator",
                "CDFSyncTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        // The real client against the real simulator over loopback, and the built cdfsync run as a process.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "CDFSyncEngine", "CDFSyncClient", "CDFSyncStorage", "CDFSyncCore", "WarehouseSimulator",
                "CDFSyncTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
