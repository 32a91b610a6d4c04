// swift-tools-version: 6.1
import PackageDescription

// Micro-benchmarks for cdfsync, in a nested package so that the root package never resolves the benchmark
// plugin (house style §2.6). Run from the repository root:
//
//     swift package --package-path Benchmarks benchmark                      # run everything
//     make bench-check        # CI gate: mallocCountTotal vs Benchmarks/Thresholds/<swift version>/
//     make bench-thresholds   # rewrite those thresholds from a fresh run
//     swift run -c release --package-path Benchmarks storage-throughput full-sync   # the storage layer at 1 M rows
//
// Benchmark names contain no spaces or slashes: benchmark 1.38.1 writes threshold files with those replaced by
// `_` but reads them back under the raw name, so a name with a space never finds its threshold.
//
// See docs/benchmarks.md.

let benchmarkTargetDependencies: [Target.Dependency] = [
    "BenchmarkFixtures",
    .product(name: "Benchmark", package: "benchmark"),
    .product(name: "CDFSyncCore", package: "cdfsync"),
    .product(name: "CDFSyncStorage", package: "cdfsync"),
]

let package = Package(
    name: "cdfsync-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "cdfsync", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Deterministic inputs (change-feed chunks, panel changes, NDJSON segments) shared by the suites.
        .target(
            name: "BenchmarkFixtures",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "CDFSyncCore", package: "cdfsync"),
                .product(name: "CDFSyncStorage", package: "cdfsync"),
            ],
            path: "Sources/BenchmarkFixtures"
        ),
        .executableTarget(
            name: "DecoderBenchmarks",
            dependencies: benchmarkTargetDependencies,
            path: "Benchmarks/DecoderBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "ApplyBenchmarks",
            dependencies: benchmarkTargetDependencies,
            path: "Benchmarks/ApplyBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "SinkBenchmarks",
            dependencies: benchmarkTargetDependencies,
            path: "Benchmarks/SinkBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Not a benchmark suite: a command that times the storage layer on a million rows (apply, deliver, the raw
        // LMDB floor) and prints wall and thread CPU per phase. Never gated.
        .executableTarget(
            name: "storage-throughput",
            dependencies: [
                .product(name: "CDFSyncCore", package: "cdfsync"), .product(name: "CDFSyncStorage", package: "cdfsync"),
            ],
            path: "Sources/storage-throughput"
        ),
    ]
)
