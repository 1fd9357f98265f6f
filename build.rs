//! Compiles every `proto/**/*.proto` with the pure-Rust `protox` compiler (no system `protoc`),
//! generates tonic/prost code for all of them, and writes the encoded `FileDescriptorSet`
//! (with imports and source info) that reflection and the edge gateway read at run time.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let mut files = Vec::new();
    collect_protos(&root, &root, &mut files)?;
    files.sort();

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;

    // Encoded by protox itself: re-encoding its prost_types value would drop the
    // `google.api.http` and `mercato.auth.v1.policy` extensions.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("mercato_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .include_file("_includes.rs")
        .emit_rerun_if_changed(false)
        .compile_fds_with_config(compiler.file_descriptor_set(), prost_config())?;

    println!("cargo:rerun-if-changed=proto");
    for file in &files {
        println!("cargo:rerun-if-changed=proto/{}", file.display());
    }
    Ok(())
}

/// Type names (`prost::Name`) let the event outbox derive subjects from message names.
fn prost_config() -> prost_build::Config {
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    config
}

/// Every `.proto` under `dir`, relative to `root` (the include path).
fn collect_protos(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(root, &path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto")
            && let Ok(relative) = path.strip_prefix(root)
        {
            out.push(relative.to_path_buf());
        }
    }
    Ok(())
}
