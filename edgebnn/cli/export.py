"""``edgebnn export``: C sources (or a C array of the flatbuffer) from a model.

Never imports TensorFlow.
"""

import shlex
import sys
from pathlib import Path

import click

from edgebnn.cli._common import echo_json, handle_errors, render_table, status


@click.command("export")
@click.argument("model")
@click.option("-o", "--output", "output", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="The directory to write: new, empty, or an earlier edgebnn output "
                   "(replaced atomically); anything else needs --force.")
@click.option("--name", default="model", show_default=True,
              help="C identifier prefix of the generated API (NAME_invoke).")
@click.option("-t", "--target", "target", default=None, metavar="TARGET",
              help="A target name, .toml file or 'native' (kernel set, compiler and flags of the "
                   "Makefile); default: portable C (cc -O2, the ref kernels).")
@click.option("--format", "format_", type=click.Choice(["c", "c-array", "cmake", "arduino"]), default="c", show_default=True,
              help="c: generated engine (NAME.h, NAME.c, runtime, Makefile); "
                   "c-array: the .tflite as an alignas(16) C array (NAME.h, NAME.cc); "
                   "cmake: a CMake project (static library NAME, toolchain.cmake for a cross target); "
                   "arduino: an Arduino library (library.properties, src/, examples/NAME/NAME.ino).")
@click.option("--fuse/--no-fuse", default=None,
              help="Fuse conv -> pool -> batchnorm -> binarize chains into row slices (less RAM, same "
                   "results). Default: the target's (on for microcontrollers and portable C, off for "
                   "hosts and Linux boards, where the unfused kernels are faster).")
@click.option("--force", is_flag=True,
              help="Replace OUTPUT even if it is a directory edgebnn did not write (its files are lost).")
@click.option("--json", "json_", is_flag=True, help="Print a JSON report instead of text.")
@handle_errors
def export(model, output, name, target, format_, fuse, force, json_):
    """Generate C for MODEL (.tflite, run directory or shipped model name) in OUTPUT.

    \b
    Example:
      edgebnn export mnist-bcnn-binary -o build/mnist --name mnist
      make -C build/mnist          # builds libmnist.a
    """
    from edgebnn import codegen
    from edgebnn.io import check_output_directory, output_directory
    from edgebnn.modelref import ModelRef

    check_output_directory(output, force=force)  # before any work: refuse a user's folder early
    tflite_path = ModelRef.resolve(model).require_tflite("export")
    tgt = None
    if target is not None:
        from edgebnn.targets import load_target

        tgt = load_target(target)
    command = shlex.join(["edgebnn", *sys.argv[1:]]) if sys.argv and "edgebnn" in Path(sys.argv[0]).name \
        else shlex.join(["edgebnn", "export", str(model), "-o", str(output), "--name", name]
                        + (["--target", target] if target else []) + (["--format", format_])
                        + ([] if fuse is None else ["--fuse" if fuse else "--no-fuse"]))
    status(f"generating C for {tflite_path} ...")
    report = {"model": str(tflite_path), "output": str(output), "format": format_, "name": name}
    if format_ != "c-array":
        from edgebnn.codegen.package import arduino_package, cmake_package

        gen = codegen.generate(tflite_path, name=name, target=tgt, fuse=fuse, command=command)
        files = {"c": lambda: gen.files,
                 "cmake": lambda: cmake_package(gen, target=tgt, command=command),
                 "arduino": lambda: arduino_package(gen, command=command)}[format_]()
        report.update(gen.to_dict())
        report["files"] = sorted(files)
        report["target"] = tgt.name if tgt else None
    else:
        files = codegen.c_array_sources(tflite_path, name=name, command=command)
        report["files"] = sorted(files)
        report["bytes"] = Path(tflite_path).stat().st_size
    with output_directory(output, kind="export", force=force) as tmp:
        for rel, text in files.items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
    if json_:
        echo_json(report)
        return
    click.echo(f"wrote {len(files)} files to {click.format_filename(output)}")
    if format_ != "c-array":
        rows = [
            ("weights (constants)", f"{gen.weights_bytes:,} B"),
            ("arena (peak activations)", f"{gen.arena_bytes:,} B"),
            ("  of which fused scratch", f"{gen.scratch_bytes:,} B"),
            ("input", f"{list(gen.input_shape)} ({gen.input_size} floats)"),
            ("output", f"{list(gen.output_shape)} ({gen.output_size} floats)"),
            ("calls", str(sum(1 for o in gen.ops if o["kernel"]))),
        ]
        click.echo(render_table(("", name), rows))
        out = click.format_filename(output)
        how = {"c": f"make -C {out}", "cmake": f"cmake -S {out} -B build && cmake --build build",
               "arduino": f"copy {out} into your Arduino libraries folder"}[format_]
        click.echo(f"build: {how}   (API: int {name}_invoke(const float *input, float *output))")
    else:
        click.echo(f"{name}_tflite[] : {report['bytes']:,} bytes (alignas(16)), in {name}.h / {name}.cc")
