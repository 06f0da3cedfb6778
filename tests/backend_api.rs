//! The API a backend author uses (issue 11): the Rust names of
//! implementations, the generated C header, C implementations checked at
//! link time, the `cc::Build` handed to the build script, glob and
//! predicate policies, and configuration errors reported all at once. Every
//! case runs on the checked-in manifests (`cuda-api.yaml`); the ones about
//! building build a small shim crate as a user would.

mod shim_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use cudastub_codegen::catalog::Catalog;
use cudastub_codegen::emit::shim::{self, FunctionInfo, Plan, Policy, ShimBuild, rust_impl_name};
use cudastub_codegen::view::LibraryMajor;
use shim_support::*;

fn catalog() -> Catalog {
    Catalog::load(&cudastub_tests::index_path()).expect("cuda-api.yaml loads")
}

// 1. Rust names of implementations -------------------------------------------

#[test]
fn every_export_of_every_library_and_major_has_its_own_rust_name() {
    let catalog = catalog();
    let views = catalog.views();
    assert!(views.len() >= 6, "every (library, major) of the catalog");
    for view in views {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for f in &view.functions {
            let rust = rust_impl_name(f.name);
            assert!(
                syn_ident_ok(&rust),
                "{} {}: `{rust}` (for {}) is not a Rust identifier",
                view.library,
                view.major,
                f.name
            );
            if let Some(other) = seen.insert(rust.clone(), f.name) {
                panic!(
                    "{} major {}: `{other}` and `{}` are both implemented by `{rust}`",
                    view.library, view.major, f.name
                );
            }
        }
    }
}

/// A plain (non-raw) Rust identifier in snake case.
fn syn_ident_ok(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[test]
fn rust_names_follow_the_documented_rule() {
    let expected = [
        ("cudaGetDeviceCount", "cuda_get_device_count"),
        ("cudaLaunchKernel", "cuda_launch_kernel"),
        ("__cudaLaunchKernel", "__cuda_launch_kernel"),
        ("cudaLaunchKernel_ptsz", "cuda_launch_kernel_ptsz"),
        ("__cudaLaunchKernel_ptsz", "__cuda_launch_kernel_ptsz"),
        ("cudaGetKernel", "cuda_get_kernel"),
        ("__cudaGetKernel", "__cuda_get_kernel"),
        ("cudaMemcpy", "cuda_memcpy"),
        ("cudaMemcpy_ptds", "cuda_memcpy_ptds"),
        ("cudaMemcpy2DToArray", "cuda_memcpy_2d_to_array"),
        ("cudaMemcpy2DToArray_ptds", "cuda_memcpy_2d_to_array_ptds"),
        ("cudaMemcpy2D_ptds", "cuda_memcpy_2d_ptds"),
        ("cudaMemcpy3DPeer", "cuda_memcpy_3d_peer"),
        (
            "cudaMemcpy3DPeerAsync_ptsz",
            "cuda_memcpy_3d_peer_async_ptsz",
        ),
        ("cudaMalloc3D", "cuda_malloc_3d"),
        ("cudaMalloc3DArray", "cuda_malloc_3d_array"),
        ("cudaGraphAddMemcpyNode1D", "cuda_graph_add_memcpy_node_1d"),
        (
            "cudaDeviceGetTexture1DLinearMaxWidth",
            "cuda_device_get_texture_1d_linear_max_width",
        ),
        (
            "cudaGraphicsGLRegisterImage",
            "cuda_graphics_gl_register_image",
        ),
        ("cudaGLSetGLDevice", "cuda_gl_set_gl_device"),
        (
            "cudaGraphicsVDPAURegisterOutputSurface",
            "cuda_graphics_vdpau_register_output_surface",
        ),
        ("cudaVDPAUSetVDPAUDevice", "cuda_vdpau_set_vdpau_device"),
        (
            "cudaEGLStreamConsumerConnect",
            "cuda_egl_stream_consumer_connect",
        ),
        ("cudaDeviceGetPCIBusId", "cuda_device_get_pci_bus_id"),
        (
            "cudaDeviceFlushGPUDirectRDMAWrites",
            "cuda_device_flush_gpu_direct_rdma_writes",
        ),
        ("cudaDeviceGetP2PAttribute", "cuda_device_get_p2p_attribute"),
        (
            "cudaCtxResetPersistingL2Cache",
            "cuda_ctx_reset_persisting_l2_cache",
        ),
        (
            "cudaGetDeviceProperties_v2",
            "cuda_get_device_properties_v2",
        ),
        (
            "cudaStreamGetCaptureInfo_v3_ptsz",
            "cuda_stream_get_capture_info_v3_ptsz",
        ),
        ("cublasSgemm_v2", "cublas_sgemm_v2"),
        ("cublasSgemm_v2_64", "cublas_sgemm_v2_64"),
        ("cublasDnrm2", "cublas_dnrm2"),
        ("cublasDnrm2_v2", "cublas_dnrm2_v2"),
        ("cublasNrm2Ex", "cublas_nrm2_ex"),
        ("cublasCgemm3mBatched", "cublas_cgemm3m_batched"),
        ("cublasCher2k_v2", "cublas_cher2k_v2"),
        ("cublasUint8gemmBias", "cublas_uint8gemm_bias"),
        ("cublasLtMatmul", "cublas_lt_matmul"),
        (
            "cublasLtHSHMatmulAlgoInit",
            "cublas_lt_hsh_matmul_algo_init",
        ),
        ("cublasLtLegacyGemmZZZ", "cublas_lt_legacy_gemm_zzz"),
        ("cublasLt_for_cublas_HSH", "cublas_lt_for_cublas_hsh"),
        // The last capital of a run before lowercase starts the next word,
        // as in `GLRegister`: the rule cannot tell `HSH` + `gemv` from it.
        ("cublasHSHgemvBatched", "cublas_hs_hgemv_batched"),
    ];
    let mut wrong = Vec::new();
    for (c, rust) in expected {
        let got = rust_impl_name(c);
        if got != rust {
            wrong.push(format!("{c}: expected `{rust}`, got `{got}`"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// 2. The C header of C implementations ---------------------------------------

/// A plan implementing in C every function of `view` that can be implemented.
fn all_in_c(view: &LibraryMajor) -> Plan {
    let mut plan = Plan::default();
    for f in view.functions.iter().filter(|f| !f.proto.unknown_params) {
        plan.policies.insert(f.name.to_string(), Policy::C);
    }
    plan
}

/// Compiles `c` (with `header` as `cudastub_impl.h` beside it) to an object
/// file with `-Wall -Werror`.
fn compile_with_header(dir: &Path, header: &str, c: &str) -> Output {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("cudastub_impl.h"), header).expect("write header");
    std::fs::write(dir.join("impl.c"), c).expect("write impl.c");
    Command::new(c_compiler())
        .current_dir(dir)
        .args([
            "-std=gnu17",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-c",
            "impl.c",
            "-o",
            "impl.o",
        ])
        .output()
        .expect("run the C compiler")
}

#[test]
fn the_header_of_every_implementable_function_compiles_with_its_layouts() {
    let catalog = catalog();
    let dir = scratch("impl-header-all");
    for view in catalog.views() {
        let header = shim::impl_header(&view, &all_in_c(&view));
        let out = compile_with_header(
            &dir.join(format!("{}-{}", view.library, view.major)),
            &header,
            "#include \"cudastub_impl.h\"\n#include \"cudastub_impl.h\"\n",
        );
        assert!(
            out.status.success(),
            "{} {}: the header does not compile:\n{}",
            view.library,
            view.major,
            text(&out.stderr)
        );
        let prototypes =
            header.matches(" cudastub_impl_").count() + header.matches("*cudastub_impl_").count();
        assert_eq!(
            prototypes,
            all_in_c(&view).policies.len(),
            "{} {}: one prototype per C implementation",
            view.library,
            view.major
        );
    }
}

#[test]
fn an_implementation_with_the_wrong_prototype_does_not_compile() {
    let catalog = catalog();
    let dir = scratch("impl-header-mismatch");
    for major in MAJORS {
        let entry = catalog.library("cudart").expect("cudart");
        let view = LibraryMajor::new(&entry.manifest, major).expect("view");
        let mut plan = Plan::default();
        for name in ["cudaDriverGetVersion", "cudaLaunchKernel", "cudaMemGetInfo"] {
            plan.policies.insert(name.into(), Policy::C);
        }
        let header = shim::impl_header(&view, &plan);
        assert!(
            header.contains("typedef enum cudaError cudaError_t;")
                && header.contains("struct dim3 {")
                && header.contains("CUDASTUB_LAYOUT(sizeof(struct dim3) == 12")
                && header.contains(
                    "cudaError_t cudastub_impl_cudaDriverGetVersion(int *driverVersion);"
                ),
            "major {major}:\n{header}"
        );
        let right = "#include \"cudastub_impl.h\"\n\
            cudaError_t cudastub_impl_cudaDriverGetVersion(int *v) { *v = 1; return cudaSuccess; }\n\
            cudaError_t cudastub_impl_cudaLaunchKernel(const void *f, dim3 g, dim3 b, void **a, size_t s, cudaStream_t st) {\n\
                (void)f; (void)a; (void)s; (void)st; return g.x && b.x ? cudaSuccess : cudaErrorInvalidValue;\n}\n\
            cudaError_t cudastub_impl_cudaMemGetInfo(size_t *free, size_t *total) { *free = *total = 0; return cudaSuccess; }\n";
        let out = compile_with_header(&dir.join(format!("right{major}")), &header, right);
        assert!(out.status.success(), "major {major}: {}", text(&out.stderr));
        let wrong = right.replace(
            "cudastub_impl_cudaDriverGetVersion(int *v)",
            "cudastub_impl_cudaDriverGetVersion(unsigned *v)",
        );
        let out = compile_with_header(&dir.join(format!("wrong{major}")), &header, &wrong);
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success()
                && stderr.contains("conflicting types for")
                && stderr.contains("cudastub_impl_cudaDriverGetVersion"),
            "major {major}: a mismatched prototype must not compile:\n{stderr}"
        );
    }
}

// 5. Globs and predicates ----------------------------------------------------

/// The policies `shim` gives cudart at `major`, by function.
fn resolved(shim: &ShimBuild, major: u32) -> Result<Plan, Vec<String>> {
    let catalog = catalog();
    let entry = catalog.library("cudart").expect("cudart");
    let view = LibraryMajor::new(&entry.manifest, major).expect("view");
    shim.plan(&view)
}

fn shim12() -> ShimBuild {
    ShimBuild::new(cudastub_tests::index_path())
        .library("cudart")
        .major(12)
}

fn fail(status: &str) -> Policy {
    Policy::Fail(status.to_string())
}

#[test]
fn globs_and_predicates_select_functions_and_exact_names_win() {
    let unsupported = fail("cudaErrorNotSupported");
    // Exact names beat globs and predicates in either order; among globs
    // and predicates the later call wins.
    let shim = shim12()
        .forward(["cudaMallocHost"])
        .fail(["cudaMalloc*"], "cudaErrorNotSupported")
        .implement(["cudaMemcpy?D"])
        .fail(["cudaMemcpy*"], "cudaErrorInvalidValue")
        .implement_in_c(["cudaMemcpy3D*"])
        .policy_where(
            |f: &FunctionInfo| f.kind == "per-thread" && f.api.starts_with("cudaMemcpy"),
            fail("cudaErrorUnknown"),
        )
        .forward(["cudaMemcpy3D_ptds"])
        .policy_where(
            |f: &FunctionInfo| f.name.starts_with("cudaNoSuchFunction"),
            Policy::Rust,
        );
    let plan = resolved(&shim, 12).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let expect = [
        ("cudaMallocHost", Policy::Forward),
        ("cudaMalloc", unsupported.clone()),
        ("cudaMallocManaged", unsupported.clone()),
        ("cudaMalloc3DArray", unsupported),
        ("cudaMemcpy", fail("cudaErrorInvalidValue")),
        // `cudaMemcpy?D` came before `cudaMemcpy*`, which wins.
        ("cudaMemcpy2D", fail("cudaErrorInvalidValue")),
        ("cudaMemcpy3DPeer", Policy::C),
        ("cudaMemcpy3D", Policy::C),
        ("cudaMemcpy_ptds", fail("cudaErrorUnknown")),
        ("cudaMemcpy3D_ptds", Policy::Forward),
        ("cudaGetDeviceCount", Policy::Forward),
    ];
    for (name, policy) in expect {
        assert_eq!(plan.policy(name), &policy, "the policy of {name}");
    }
    // A later glob narrows an earlier one.
    let shim = shim12()
        .fail(["cudaMemcpy*"], "cudaErrorInvalidValue")
        .implement(["cudaMemcpy?D"]);
    let plan = resolved(&shim, 12).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert_eq!(plan.policy("cudaMemcpy2D"), &Policy::Rust);
    assert_eq!(plan.policy("cudaMemcpy3D"), &Policy::Rust);
    assert_eq!(
        plan.policy("cudaMemcpy2DAsync"),
        &fail("cudaErrorInvalidValue")
    );
}

#[test]
fn a_glob_that_matches_nothing_is_an_error() {
    let shim = shim12()
        .fail(["cudaFrob*"], "cudaErrorNotSupported")
        .implement(["cuda[Mem"]);
    let errors = resolved(&shim, 12).expect_err("must fail");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.contains(&"`cudaFrob*` matches no function of cudart major 12".to_string()),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("`cuda[Mem` is not a valid glob")),
        "{errors:?}"
    );
    // A glob of 12's functions only is an error in 13. (In 12 the glob
    // leaves the legacy variant of the API, which a predicate forwards: its
    // export's name is the API's, which would name both.)
    let shim = shim12()
        .implement(["cudaGetDeviceProperties_v*"])
        .policy_where(
            |f: &FunctionInfo| f.name == "cudaGetDeviceProperties",
            Policy::Forward,
        );
    assert!(resolved(&shim, 12).is_ok());
    assert_eq!(
        resolved(&shim, 13).expect_err("13 has no _v2"),
        ["`cudaGetDeviceProperties_v*` matches no function of cudart major 13"]
    );
}

#[test]
fn the_plan_reports_a_policy_string_that_names_no_policy_with_the_others() {
    let shim = shim12()
        .policy_str("cudaMalloc", "explode")
        .fail(["cudaFrob*"], "cudaErrorNotSupported");
    let errors = resolved(&shim, 12).expect_err("must fail");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("cudaMalloc: unknown policy `explode`")),
        "{errors:?}"
    );
    assert!(
        errors.contains(&"`cudaFrob*` matches no function of cudart major 12".to_string()),
        "{errors:?}"
    );
}

// 6. API families ------------------------------------------------------------

/// The plan of `shim` for `library` at `major`.
fn resolved_in(shim: &ShimBuild, library: &str, major: u32) -> Result<Plan, Vec<String>> {
    let catalog = catalog();
    let entry = catalog.library(library).expect("library");
    let view = LibraryMajor::new(&entry.manifest, major).expect("view");
    shim.plan(&view)
}

#[test]
fn an_api_name_routes_every_abi_variant_each_to_its_own_implementation() {
    let shim = shim12().implement(["cudaGetDeviceProperties"]);
    let plan = resolved(&shim, 12).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    // 12: the legacy export (CUDA 11's struct) and `_v2`, each its own.
    for name in ["cudaGetDeviceProperties", "cudaGetDeviceProperties_v2"] {
        assert_eq!(plan.policy(name), &Policy::Rust, "{name}");
        assert_eq!(plan.implementation_of(name), name);
    }
    let plan = resolved(&shim, 13).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert_eq!(plan.policy("cudaGetDeviceProperties"), &Policy::Rust);

    // Per-thread variants share their plain form's implementation, the
    // default stream mapped to the per-thread one where there is a stream.
    let shim = shim12().implement(["cudaMemcpyAsync", "cudaMemcpy"]);
    let plan = resolved(&shim, 12).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert_eq!(
        plan.routes.get("cudaMemcpyAsync_ptsz"),
        Some(&shim::Route {
            to: "cudaMemcpyAsync".into(),
            stream: Some("stream".into())
        })
    );
    assert_eq!(
        plan.routes.get("cudaMemcpy_ptds"),
        Some(&shim::Route {
            to: "cudaMemcpy".into(),
            stream: None
        })
    );
    assert_eq!(plan.routes.len(), 2, "{:?}", plan.routes);
    // Named exactly, a per-thread variant has its own implementation.
    let shim = shim12().implement(["cudaMemcpyAsync", "cudaMemcpyAsync_ptsz"]);
    let plan = resolved(&shim, 12).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert!(plan.routes.is_empty(), "{:?}", plan.routes);

    // The driver: the legacy 32-bit ABI, `_v2`, and `_v2_ptsz` through `_v2`'s.
    let shim = ShimBuild::new(cudastub_tests::index_path())
        .library("cuda")
        .major(12)
        .implement(["cuMemcpyHtoDAsync"]);
    let plan = resolved_in(&shim, "cuda", 12).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    for name in [
        "cuMemcpyHtoDAsync",
        "cuMemcpyHtoDAsync_v2",
        "cuMemcpyHtoDAsync_v2_ptsz",
    ] {
        assert_eq!(plan.policy(name), &Policy::Rust, "{name}");
    }
    assert_eq!(
        plan.routes.get("cuMemcpyHtoDAsync_v2_ptsz"),
        Some(&shim::Route {
            to: "cuMemcpyHtoDAsync_v2".into(),
            stream: Some("hStream".into())
        })
    );
    assert_eq!(plan.routes.len(), 1);

    // A `_ptsz` variant whose per-thread meaning no single stream parameter
    // carries has its own implementation.
    let shim = ShimBuild::new(cudastub_tests::index_path())
        .library("cuda")
        .major(12)
        .implement([
            "cuLaunchKernelEx",
            "cuStreamCopyAttributes",
            "cuStreamQuery",
        ]);
    let plan = resolved_in(&shim, "cuda", 12).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert_eq!(
        plan.routes.keys().collect::<Vec<_>>(),
        ["cuStreamQuery_ptsz"],
        "only the variant with one stream parameter is routed"
    );
    let shim = shim12().implement(["cudaGetDriverEntryPoint"]);
    let plan = resolved(&shim, 12).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert!(plan.routes.is_empty(), "{:?}", plan.routes);

    // cuBLAS: the legacy API, `_v2` and the 64-bit `_v2_64` are one API.
    let shim = ShimBuild::new(cudastub_tests::index_path())
        .library("cublas")
        .major(12)
        .fail(["cublasSgemm"], "CUBLAS_STATUS_NOT_SUPPORTED");
    let plan = resolved_in(&shim, "cublas", 12).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let failed: Vec<&String> = plan.policies.keys().collect();
    assert_eq!(
        failed,
        ["cublasSgemm", "cublasSgemm_v2", "cublasSgemm_v2_64"]
    );
}

#[test]
fn an_api_left_partly_forwarded_is_refused_naming_the_variants() {
    // The trap: CUDA 12 programs call `_v2`, CUDA 11 ones the legacy export.
    let shim = shim12().implement(["cudaGetDeviceProperties_v2"]);
    assert_eq!(
        resolved(&shim, 12).expect_err("a half-routed API must be refused"),
        [
            "`cudaGetDeviceProperties_v2` is implemented in Rust, but other variants of the API `cudaGetDeviceProperties` would be left forwarded: `cudaGetDeviceProperties`; name the API to give every variant the policy, or give those theirs by name"
        ]
    );
    // A glob missing the per-thread forms.
    let shim = shim12().fail(["cudaMemcpy*Async"], "cudaErrorNotSupported");
    let errors = resolved(&shim, 12).expect_err("refused");
    assert!(
        errors.iter().any(|e| e.starts_with("`cudaMemcpy2DAsync` is failed with cudaErrorNotSupported, but other variants of the API `cudaMemcpy2DAsync` would be left forwarded: `cudaMemcpy2DAsync_ptsz`")),
        "{errors:?}"
    );
    // Deciding each variant explicitly is accepted.
    let shim = shim12()
        .implement(["cudaGetDeviceProperties_v2"])
        .policy_where(
            |f: &FunctionInfo| f.name == "cudaGetDeviceProperties",
            fail("cudaErrorNotSupported"),
        );
    assert!(resolved(&shim, 12).is_ok());
    // A variant of unknown parameters cannot follow the API (NVML's `_v2`,
    // whose struct CUDA 12's headers lack).
    let shim = ShimBuild::new(cudastub_tests::index_path())
        .library("nvml")
        .major(12)
        .implement(["nvmlDeviceGetRemappedRows"]);
    let errors = resolved_in(&shim, "nvml", 12).expect_err("refused");
    assert_eq!(
        errors,
        [
            "the API `nvmlDeviceGetRemappedRows` is implemented in Rust, but its variant `nvmlDeviceGetRemappedRows_v2` has unknown parameters (`(...)`) and would be left forwarded: forward or fail it by name",
        ]
    );
    let shim = shim.forward(["nvmlDeviceGetRemappedRows_v2"]);
    assert!(resolved_in(&shim, "nvml", 12).is_ok());
}

// 7. Every error at once -----------------------------------------------------

#[test]
fn every_configuration_error_is_reported_at_once_sorted_with_suggestions() {
    let shim = ShimBuild::new(cudastub_tests::index_path())
        .library("cudart")
        .major(13)
        .policy_str("cudaMalloc", "explode")
        .policy_str("cudaFree", "fail:cudaErrorNotSuported")
        .implement([
            "cudaGetDeviceCont",
            "cudaGetDeviceProperties_v2",
            "cudaSubgridCreate",
        ])
        .fail(["cudaFrob*"], "cudaErrorNotSupported");
    let message = shim
        .build()
        .expect_err("a bad configuration must not build");
    let lines: Vec<&str> = message.lines().collect();
    let expected = [
        "`cudaFrob*` matches no function of cudart major 13",
        "`cudaGetDeviceCont` is not a function of cudart in any major; did you mean `cudaGetDeviceCount`?",
        "`cudaGetDeviceProperties_v2` is not a function of major 13 (it is in major 12); did you mean `cudaGetDeviceProperties`?",
        "`cudaSubgridCreate` cannot be implemented: its parameters are unknown (`(...)` in the manifest); it can only be forwarded or failed",
        "cudaMalloc: unknown policy `explode` (expected forward, fail:STATUS, rust, c or fallback)",
        "unknown status `cudaErrorNotSuported` for major 13; did you mean `cudaErrorNotSupported`?",
    ];
    assert_eq!(
        lines, expected,
        "every error, sorted, one per line:\n{message}"
    );
}

// 1–4 built as a user builds them ----------------------------------------------

/// A user's shim crate (`libcudart.so`), configured per `CASE`:
/// - `good`: Rust implementations of exports whose names once collided, a
///   C implementation that includes `cudastub_impl.h` and needs the include
///   directory, define and flag given to the `cc::Build`;
/// - `missing`: one of its two C implementations defined nowhere.
fn user_crate() -> &'static Path {
    static CRATE: OnceLock<PathBuf> = OnceLock::new();
    CRATE.get_or_init(|| {
        let krate = scratch("user-crate");
        for d in ["src", "inc"] {
            std::fs::create_dir_all(krate.join(d)).expect("mkdir");
        }
        let path = |p: &str| format!("{:?}", repo_root().join(p).display().to_string());
        let files = [
            (
                "Cargo.toml",
                format!(
                    "[package]\nname = \"user-shim\"\nversion = \"0.0.0\"\nedition = \"2024\"\n[workspace]\n\
                     [lib]\nname = \"cudart\"\ncrate-type = [\"cdylib\"]\n\
                     [dependencies]\ncudastub-runtime = {{ path = {} }}\n\
                     [build-dependencies]\ncudastub-codegen = {{ path = {}, default-features = false }}\n",
                    path("runtime"),
                    path("codegen")
                ),
            ),
            (
                "build.rs",
                format!(
                    r#"use cudastub_codegen::emit::shim::ShimBuild;
fn main() {{
    println!("cargo:rerun-if-env-changed=CASE");
    // The re-exported `cc`: no dependency of the crate's own.
    let mut cc = cudastub_codegen::cc::Build::new();
    cc.include("inc");
    let shim = ShimBuild::new({}).library("cudart").major(12)
        .implement(["cudaLaunchKernel", "__cudaLaunchKernel", "cudaLaunchKernel_ptsz", "__cudaLaunchKernel_ptsz"])
        .implement(["cudaGetKernel", "__cudaGetKernel", "cudaMemcpy2DToArray", "cudaMemcpyAsync"])
        .cc(cc)
        .c_build(|b: &mut cudastub_codegen::cc::Build| {{
            b.define("VERSION_FROM_DEFINE", "4200").flag("-DFROM_FLAG=40").flag("-Werror");
        }});
    let shim = match std::env::var("CASE").unwrap_or_default().as_str() {{
        "good" => shim.implement_in_c(["cudaDriverGetVersion"]).c_source("src/impl.c"),
        "missing" => shim.implement_in_c(["cudaDriverGetVersion", "cudaRuntimeGetVersion"]).c_source("src/impl.c"),
        // A Rust implementation the backend does not define.
        "missing-rust" => shim.implement_in_c(["cudaDriverGetVersion"]).c_source("src/impl.c")
            .implement(["cudaGetDeviceCount"]),
        // A backend of the crate's own, driven by the roles: every `out
        // scalar` of an integer gets 7, and the call succeeds.
        "custom" => shim.implement_in_c(["cudaDriverGetVersion"]).c_source("src/impl.c")
            .policy(["cudaGetDeviceCount"], cudastub_codegen::emit::shim::Policy::custom(Sevens)),
        other => panic!("unknown CASE {{other}}"),
    }};
    if let Err(e) = shim.build() {{
        eprintln!("{{e}}");
        std::process::exit(1);
    }}
}}

/// Answers with 7 in every integer output, by the parameters' roles.
#[derive(Debug)]
struct Sevens;
impl cudastub_codegen::emit::shim::PolicyEmitter for Sevens {{
    fn describe(&self) -> String {{ "answered with sevens".into() }}
    fn emit(&self, cx: &cudastub_codegen::emit::shim::PolicyContext) -> cudastub_codegen::emit::shim::Emitted {{
        use cudastub_codegen::quote::{{format_ident, quote}};
        use cudastub_codegen::roles::{{Role, Dir, Target}};
        let name = format_ident!("{{}}", cx.export.name);
        let (params, ret) = (&cx.params, &cx.returns);
        let writes = cx.export.proto.params.iter().zip(cx.export.roles).filter_map(|(p, r)| match r {{
            Role::Pointer(ptr) if ptr.dir == Dir::Out && ptr.target == Target::Scalar && p.ty.base == "int" => {{
                let p = format_ident!("{{}}", p.name);
                Some(quote!(if !#p.is_null() {{ unsafe {{ *#p = 7 }} }}))
            }}
            _ => None,
        }});
        cudastub_codegen::emit::shim::Emitted {{
            items: quote! {{
                pub unsafe extern "C" fn #name(#(#params),*) #ret {{
                    #(#writes)*
                    unsafe {{ ::core::mem::zeroed() }}
                }}
            }},
            target: Some(quote!(#name)),
        }}
    }}
}}
"#,
                    path("cuda-api.yaml")
                ),
            ),
            (
                "inc/answer.h",
                "#define ANSWER_OFFSET 2\n".to_string(),
            ),
            (
                "src/impl.c",
                "#include \"cudastub_impl.h\" /* from OUT_DIR */\n\
                 #include \"answer.h\"        /* from the include directory given to cc */\n\
                 #ifndef FROM_FLAG\n#error the flag did not reach the compiler\n#endif\n\
                 cudaError_t cudastub_impl_cudaDriverGetVersion(int *version) {\n\
                 \x20   *version = VERSION_FROM_DEFINE + FROM_FLAG + ANSWER_OFFSET;\n\
                 \x20   return cudaSuccess;\n}\n"
                    .to_string(),
            ),
            (
                "src/lib.rs",
                r#"include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs"));
mod backend {
    use core::ffi::c_void;
    use crate::types::{cudaError_t, cudaKernel_t, cudaStream_t, dim3, cudaArray_t, cudaMemcpyKind};
    pub unsafe extern "C" fn cuda_launch_kernel(_: *const c_void, _: dim3, _: dim3, _: *mut *mut c_void, _: usize, _: cudaStream_t) -> cudaError_t { 1 }
    pub unsafe extern "C" fn __cuda_launch_kernel(_: cudaKernel_t, _: dim3, _: dim3, _: *mut *mut c_void, _: usize, _: cudaStream_t) -> cudaError_t { 2 }
    pub unsafe extern "C" fn cuda_launch_kernel_ptsz(_: *const c_void, _: dim3, _: dim3, _: *mut *mut c_void, _: usize, _: cudaStream_t) -> cudaError_t { 3 }
    pub unsafe extern "C" fn __cuda_launch_kernel_ptsz(_: cudaKernel_t, _: dim3, _: dim3, _: *mut *mut c_void, _: usize, _: cudaStream_t) -> cudaError_t { 4 }
    pub unsafe extern "C" fn cuda_get_kernel(_: *mut cudaKernel_t, _: *const c_void) -> cudaError_t { 5 }
    pub unsafe extern "C" fn __cuda_get_kernel(_: *mut cudaKernel_t, _: *const c_void) -> cudaError_t { 6 }
    // The API: `cudaMemcpyAsync_ptsz` comes here too, its null stream made 0x2.
    pub unsafe extern "C" fn cuda_memcpy_async(_: *mut c_void, _: *const c_void, _: usize, _: cudaMemcpyKind, stream: cudaStream_t) -> cudaError_t { 100 + stream as usize as cudaError_t }
    pub unsafe extern "C" fn cuda_memcpy_2d_to_array(_: cudaArray_t, _: usize, _: usize, _: *const c_void, _: usize, _: usize, _: usize, _: cudaMemcpyKind) -> cudaError_t { 7 }
}
"#
                .to_string(),
            ),
        ];
        for (name, contents) in files {
            std::fs::write(krate.join(name), contents).expect("write the user crate");
        }
        krate
    })
}

/// `cargo build` of the user crate for `case`: its output, and the built library.
fn build_user_crate(case: &str) -> (Output, PathBuf) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = repo_root().join("target/test-backend-api");
    let out = Command::new(cargo)
        .current_dir(user_crate())
        .args(["build", "--quiet"])
        .env("CASE", case)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("CUDASTUB_MAJOR")
        .output()
        .expect("run cargo");
    (out, target.join("debug/libcudart.so"))
}

/// Serializes the builds of the one user crate.
static USER_CRATE_LOCK: Mutex<()> = Mutex::new(());

#[test]
fn a_user_crate_with_c_and_rust_implementations_builds_and_answers() {
    let _lock = USER_CRATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (out, lib) = build_user_crate("good");
    assert!(
        out.status.success(),
        "the user crate does not build:\n{}",
        text(&out.stderr)
    );
    let dir = scratch("user-crate-run");
    std::fs::copy(&lib, dir.join("libcudart.so.12")).expect("copy the shim");
    let exe = consumer(12, "consumer.c", &dir);
    let run = run_with(&exe, &dir, &[("CUDASTUB_REAL_CUDART", &real_lib(12))], &[]);
    let stdout = text(&run.stdout);
    assert!(
        run.status.success() && stdout.contains("cudaDriverGetVersion -> 0, version 4242"),
        "the C implementation, built with the define, flag and include directory given to cc, answers:\n{stdout}{}",
        text(&run.stderr)
    );
    // The APIs' per-thread variants reach the same implementations.
    let exe = dir.join("per_thread_route");
    let mut cc = Command::new(cudastub_tests::c_compiler());
    cc.args(["-O1", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(c_source("per_thread_route.c"))
        .arg("-ldl");
    run_checked(cc, "compiling per_thread_route.c");
    let run = run_with(&exe, &dir, &[("CUDASTUB_REAL_CUDART", &real_lib(12))], &[]);
    assert_eq!(
        text(&run.stdout).lines().collect::<Vec<_>>(),
        [
            "cudaMemcpyAsync(null) -> 100",
            "cudaMemcpyAsync_ptsz(null) -> 102",
            "cudaMemcpyAsync_ptsz(0x10) -> 116",
            "cudaMemcpy2DToArray_ptds -> 7",
        ],
        "{}",
        text(&run.stderr)
    );
}

#[test]
fn a_backend_of_the_crates_own_is_one_policy_emitter_driven_by_roles() {
    let _lock = USER_CRATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (out, lib) = build_user_crate("custom");
    assert!(
        out.status.success(),
        "the user crate with a custom policy does not build:\n{}",
        text(&out.stderr)
    );
    let dir = scratch("user-crate-custom");
    std::fs::copy(&lib, dir.join("libcudart.so.12")).expect("copy the shim");
    let exe = consumer(12, "consumer.c", &dir);
    let run = run_with(
        &exe,
        &dir,
        &[
            ("CUDASTUB_REAL_CUDART", &real_lib(12)),
            ("CUDASTUB_TRACE", Path::new("1")),
        ],
        &[],
    );
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(
        run.status.success() && stdout.contains("cudaGetDeviceCount -> 0, count 7"),
        "the custom policy answers cudaGetDeviceCount:\n{stdout}{stderr}"
    );
    assert!(
        stderr.contains("cudaGetDeviceCount(count=7) -> cudaSuccess (0)"),
        "the trace shows what the custom policy wrote:\n{stderr}"
    );
    assert!(
        stdout.contains("cudaRuntimeGetVersion -> 0, version 12090"),
        "everything else is forwarded:\n{stdout}"
    );
}

#[test]
fn a_rust_implementation_the_backend_lacks_is_named_with_its_signature() {
    let _lock = USER_CRATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (out, _) = build_user_crate("missing-rust");
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "a shim lacking its Rust implementation must not build"
    );
    assert!(
        stderr.contains("`cudaGetDeviceCount` is implemented in Rust, but `crate::backend::cuda_get_device_count` is not defined in ")
            && stderr.contains("pub unsafe extern \"C\" fn cuda_get_device_count(count: *mut ::core::ffi::c_int) -> crate::types::cudaError_t"),
        "the build names the function and the signature to write:\n{stderr}"
    );
    assert!(
        !stderr.contains("cannot find value"),
        "rustc's error inside the generated file is not what the user sees first:\n{stderr}"
    );
}

#[test]
fn a_c_implementation_no_source_defines_fails_the_build_naming_it() {
    let _lock = USER_CRATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (out, _) = build_user_crate("missing");
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "a shim lacking cudastub_impl_cudaRuntimeGetVersion must not build"
    );
    assert!(
        stderr.contains("undefined reference to `cudastub_impl_cudaRuntimeGetVersion'")
            || stderr.contains("undefined symbol: cudastub_impl_cudaRuntimeGetVersion"),
        "the link error names the missing C implementation:\n{stderr}"
    );
}
