"""ImageNet offline preparation on miniature sources in the real layouts (a few classes, a few
tiny JPEGs each): ILSVRC2012_img_train.tar of per-class tars, the flat validation archive with
the devkit's labels, Kaggle's folders, ImageNet-C/-A/-R/-V2; read back through
`ub.datasets.get`, and every refused input leaves nothing written."""
import io
import json
import tarfile

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
from absl import flags
from PIL import Image

import uncertainty_baselines as ub
from uncertainty_baselines.datasets import imagenet_prepare as ip
from uncertainty_baselines.datasets import prepare as prepare_module
from uncertainty_baselines.datasets.prepare import prepare

WNIDS = ip.wnids()
CLASSES = (WNIDS[0], WNIDS[1], WNIDS[999])  # n01440764, n01443537, n15075141
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def colour(slot, k, split):
    """The constant colour of image k of class slot in split (0 train, 1 validation, 2 other)."""
    return (20 + 70 * slot, 20 + 40 * k, 40 + 80 * split)


def jpeg(rgb, size=(20, 14), mode="RGB", fmt="JPEG"):
    image = Image.new("RGB", size, rgb)
    buffer = io.BytesIO()
    (image.convert(mode) if mode != "RGB" else image).save(buffer, format=fmt, quality=95)
    return buffer.getvalue()


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def tar_bytes(files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            add(tar, name, data)
    return buffer.getvalue()


def write_tar(path, files, mode="w"):
    with tarfile.open(path, mode) as tar:
        for name, data in files.items():
            add(tar, name, data)
    return path


def write_tree(root, files):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def train_files(per_class=2, classes=CLASSES):
    return {f"{wnid}/{wnid}_{k}.JPEG": jpeg(colour(CLASSES.index(wnid), k, 0))
            for wnid in classes for k in range(per_class)}


def val_labels(per_class=2, classes=CLASSES):
    """Validation image i's wnid, interleaved over the classes as in the real set."""
    return [classes[i % len(classes)] for i in range(per_class * len(classes))]


def val_files(labels):
    files = {}
    for i, wnid in enumerate(labels, start=1):
        k = (i - 1) // len(set(labels))
        files[f"ILSVRC2012_val_{i:08d}.JPEG"] = jpeg(colour(CLASSES.index(wnid), k, 1))
    return files


def meta_mat():
    """meta.mat as the devkit has it: ILSVRC2012_IDs 1..1000 in a non-sorted wnid order, then
    non-leaf synsets."""
    fields = ["ILSVRC2012_ID", "WNID", "words", "num_children", "children"]
    order = WNIDS[::-1]  # ID 1 is the last sorted wnid: a mapping bug shows.
    synsets = np.zeros((1001, 1), dtype=[(f, "O") for f in fields])
    for i, wnid in enumerate(order):
        synsets[i, 0] = (np.array([[i + 1]], dtype=np.uint16), wnid, "x", np.array([[0]]), np.zeros((1, 0)))
    synsets[1000, 0] = (np.array([[1001]]), "n00001740", "entity", np.array([[2]]), np.array([[1, 2]]))
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"synsets": synsets})
    return buffer.getvalue(), {wnid: i + 1 for i, wnid in enumerate(order)}


def write_devkit(path, labels):
    meta, ids = meta_mat()
    truth = "".join(f"{ids[w]}\n" for w in labels).encode()
    return write_tar(path, {"ILSVRC2012_devkit_t12/data/meta.mat": meta,
                            f"ILSVRC2012_devkit_t12/data/{ip._GROUND_TRUTH}": truth,
                            "ILSVRC2012_devkit_t12/readme.txt": b"devkit"}, "w:gz")


def official_source(root, per_class=2):
    """ILSVRC2012_img_train.tar (a tar of per-class tars), ILSVRC2012_img_val.tar and the devkit."""
    root.mkdir()
    per_class_tars = {}
    for name, data in train_files(per_class).items():
        wnid, base = name.split("/")
        per_class_tars.setdefault(f"{wnid}.tar", {})[base] = data
    write_tar(root / "ILSVRC2012_img_train.tar", {n: tar_bytes(f) for n, f in per_class_tars.items()})
    labels = val_labels(per_class)
    write_tar(root / "ILSVRC2012_img_val.tar", val_files(labels))
    write_devkit(root / "ILSVRC2012_devkit_t12.tar.gz", labels)
    return root


def full_set_is(monkeypatch, name, classes, examples, per_class=None):
    """Make the miniature count as the full set of `name`."""
    monkeypatch.setitem(ip.EXPECTED_CLASSES, name, classes)
    monkeypatch.setitem(ip.EXPECTED_EXAMPLES, name, examples)
    monkeypatch.setitem(ip.PER_CLASS, name, per_class or {})


def read_back(name, data_dir, split="test", **kwargs):
    """[(label, rgb colour of the image centre)] of a split read through ub.datasets.get."""
    ds = ub.datasets.get(name, split=split, data_dir=str(data_dir), is_training=False, **kwargs)
    out = []
    for batch in ds.load(batch_size=8):
        for features, label, mask in zip(batch["features"].numpy(), batch["labels"].numpy(),
                                         batch["mask"].numpy()):
            if mask:
                out.append((int(label), tuple(np.round((features[112, 112] * STD + MEAN) * 255).astype(int))))
    return ds, out


def assert_images(got, expected):
    """Same labels and colours (JPEG of a constant colour is within a few levels)."""
    assert len(got) == len(expected)
    for (label, rgb), (want_label, want_rgb) in zip(sorted(got), sorted(expected)):
        assert label == want_label
        assert np.abs(np.array(rgb) - np.array(want_rgb)).max() <= 4, (rgb, want_rgb)


def assert_nothing_written(data_dir):
    assert not data_dir.exists() or list(data_dir.iterdir()) == []


def test_imagenet2012_from_the_official_archives_and_devkit(tmp_path, monkeypatch):
    source = official_source(tmp_path / "src")
    full_set_is(monkeypatch, "imagenet2012", 3, {"train": 6, "validation": 6}, {"validation": 2})
    [path] = prepare("imagenet2012", source, tmp_path / "data")
    assert path == tmp_path / "data" / "imagenet2012" / "5.1.0"
    test, got = read_back("imagenet2012", tmp_path / "data")
    assert (test.num_examples, test.num_classes) == (6, 1000)
    labels = val_labels()
    assert_images(got, [(WNIDS.index(w), colour(CLASSES.index(w), (i - 1) // 3, 1))
                        for i, w in enumerate(labels, start=1)])
    train, got = read_back("imagenet2012", tmp_path / "data", split="train")
    assert train.num_examples == 6
    assert_images(got, [(WNIDS.index(w), colour(s, k, 0)) for s, w in enumerate(CLASSES) for k in range(2)])
    builder = tfds.builder("imagenet2012", data_dir=tmp_path / "data")
    names = sorted(ex["file_name"].decode() for ex in tfds.as_numpy(builder.as_dataset(split="train")))
    assert names == sorted(name.split("/")[1] for name in train_files())
    record = json.loads((path / "ub_prepared.json").read_text())
    assert record["counts_checked"] is True and record["options"] == {}
    assert record["per_class"]["validation"] == {w: 2 for w in CLASSES}
    fingerprint = record["source_fingerprint"]
    assert fingerprint["files"] == 3 and fingerprint["hashed"] == ip.FINGERPRINT_METHOD
    # Asked again from the same files: kept, nothing rebuilt.
    assert prepare("imagenet2012", source, tmp_path / "data") == [path]
    assert json.loads((path / "ub_prepared.json").read_text()) == record


def test_kaggle_folders_with_loc_val_solution_and_a_class_subset(tmp_path):
    source = tmp_path / "kaggle"
    write_tree(source / "ILSVRC/Data/CLS-LOC/train", train_files())
    labels = val_labels()
    write_tree(source / "ILSVRC/Data/CLS-LOC/val", val_files(labels))
    (source / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(
        f"ILSVRC2012_val_{i:08d},{w} 1 2 30 40 {w} 5 6 7 8\n" for i, w in enumerate(labels, start=1)))
    subset = [CLASSES[2], CLASSES[0]]
    prepare("imagenet2012", source, tmp_path / "data", classes=",".join(subset), check=False)
    _, got = read_back("imagenet2012", tmp_path / "data")
    assert_images(got, [(WNIDS.index(w), colour(CLASSES.index(w), (i - 1) // 3, 1))
                        for i, w in enumerate(labels, start=1) if w in subset])
    record = json.loads((tmp_path / "data/imagenet2012/5.1.0/ub_prepared.json").read_text())
    assert record["options"]["classes"] == 2 and sorted(record["per_class"]["train"]) == sorted(subset)


def test_class_folder_validation_needs_no_labels_and_a_label_list_file_works(tmp_path, monkeypatch):
    full_set_is(monkeypatch, "imagenet2012", 3, {"train": 3, "validation": 6})
    write_tree(tmp_path / "a" / "train", train_files(1))
    write_tree(tmp_path / "a" / "val", {f"{w}/ILSVRC2012_val_{i:08d}.JPEG": jpeg(colour(CLASSES.index(w), 0, 1))
                                        for i, w in enumerate(val_labels(), start=1)})
    prepare("imagenet2012", tmp_path / "a", tmp_path / "data_a")
    assert read_back("imagenet2012", tmp_path / "data_a")[0].num_examples == 6
    labels = val_labels()
    write_tree(tmp_path / "b" / "train", train_files(1))
    write_tar(tmp_path / "b" / "ILSVRC2012_img_val.tar", val_files(labels))
    (tmp_path / "val.txt").write_text("".join(f"ILSVRC2012_val_{i:08d}.JPEG {w}\n"
                                              for i, w in enumerate(labels, start=1)))
    prepare("imagenet2012", tmp_path / "b", tmp_path / "data_b", val_labels=tmp_path / "val.txt")
    _, got = read_back("imagenet2012", tmp_path / "data_b")
    assert sorted(label for label, _ in got) == sorted(WNIDS.index(w) for w in labels)


def test_cmyk_and_png_images_are_stored_as_rgb_jpeg():
    cmyk = jpeg((200, 30, 60), mode="CMYK")
    stored = ip.jpeg_bytes(cmyk, "x")
    with Image.open(io.BytesIO(stored)) as image:
        assert (image.format, image.mode) == ("JPEG", "RGB")
    png = jpeg((1, 2, 3), fmt="PNG")
    with Image.open(io.BytesIO(ip.jpeg_bytes(png, "x"))) as image:
        assert image.format == "JPEG" and np.abs(np.asarray(image)[0, 0] - [1, 2, 3]).max() <= 3
    rgb = jpeg((9, 9, 9))
    assert ip.jpeg_bytes(rgb, "x") is rgb  # Stored as it is.
    with pytest.raises(ValueError, match=r"^src: n0/x\.JPEG: cannot decode image"):
        ip.jpeg_bytes(b"<html>", "src: n0/x.JPEG")


# ----- refused inputs ---------------------------------------------------------------------------
def test_validation_images_without_labels_are_refused(tmp_path):
    source = official_source(tmp_path / "src")
    (source / "ILSVRC2012_devkit_t12.tar.gz").unlink()
    with pytest.raises(ValueError, match=rf"^{source / 'ILSVRC2012_img_val.tar'}: validation images without "
                                         r"labels \(e\.g\. ILSVRC2012_val_00000001\.JPEG\): put the devkit"):
        prepare("imagenet2012", source, tmp_path / "data", check=False)
    assert_nothing_written(tmp_path / "data")


def test_a_validation_image_without_a_label_is_refused(tmp_path):
    source = official_source(tmp_path / "src")
    write_devkit(source / "ILSVRC2012_devkit_t12.tar.gz", val_labels()[:-1])  # One line short.
    with pytest.raises(ValueError, match=r"ILSVRC2012_img_val\.tar: ILSVRC2012_val_00000006\.JPEG: validation "
                                         r"image without a label in .*ILSVRC2012_devkit_t12\.tar\.gz"):
        prepare("imagenet2012", source, tmp_path / "data", check=False)
    assert_nothing_written(tmp_path / "data")


def test_a_class_count_other_than_the_full_sets_is_refused_unless_a_subset_is_asked(tmp_path, monkeypatch):
    source = official_source(tmp_path / "src")
    with pytest.raises(ValueError, match=r"imagenet2012 validation from .*: 3 classes, expected 1,000 "
                                         r"\(missing n01484850, .* and 987 more\); pass --classes or --classes_file"):
        prepare("imagenet2012", source, tmp_path / "data", check=False)
    with pytest.raises(ValueError, match=r"--classes: n0000000x is not an ILSVRC-2012 wnid \(such as n01440764\)"):
        prepare("imagenet2012", source, tmp_path / "data", classes=["n0000000x"])
    with pytest.raises(ValueError, match=rf"no images of the --classes {WNIDS[5]}"):
        prepare("imagenet2012", source, tmp_path / "data", classes=[CLASSES[0], WNIDS[5]], check=False)
    (tmp_path / "two.txt").write_text(f"# ImageNet-2\n{CLASSES[0]}\n{CLASSES[1]} tench\n\n")
    # A subset's counts are checked where every class has the same number (validation: 50).
    with pytest.raises(ValueError, match=r"split 'validation' has 4 examples, expected 100 \(pass --nocheck_counts"):
        prepare("imagenet2012", source, tmp_path / "data", classes_file=tmp_path / "two.txt")
    assert_nothing_written(tmp_path / "data")
    monkeypatch.setitem(ip.PER_CLASS, "imagenet2012", {"validation": 2})
    prepare("imagenet2012", source, tmp_path / "data", classes_file=tmp_path / "two.txt")
    assert read_back("imagenet2012", tmp_path / "data")[0].num_examples == 4


def test_an_unknown_class_folder_is_refused(tmp_path):
    files = train_files(1)
    files["cats/cat_1.JPEG"] = jpeg((1, 1, 1))
    write_tree(tmp_path / "src" / "train", files)
    write_tree(tmp_path / "src" / "val", {f"{CLASSES[0]}/v.JPEG": jpeg((1, 1, 1))})
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'src/train/cats/cat_1.JPEG'}: unknown class folder 'cats'"):
        prepare("imagenet2012", tmp_path / "src", tmp_path / "data", check=False)
    write_tar(tmp_path / "v2.tar.gz", {"imagenetv2-matched-frequency-format-val/1000/a.jpeg": jpeg((1, 1, 1))},
              "w:gz")
    with pytest.raises(ValueError, match=r"v2\.tar\.gz: imagenetv2-matched-frequency-format-val/1000/a\.jpeg: "
                                         r"unknown class folder '1000'"):
        prepare("imagenet_v2", tmp_path / "v2.tar.gz", tmp_path / "data", check=False)
    assert_nothing_written(tmp_path / "data")


@pytest.mark.parametrize("cut", ["inside_a_class_tar", "at_a_member_boundary"])
def test_a_truncated_archive_is_refused(tmp_path, cut):
    source = official_source(tmp_path / "src")
    archive = source / ("ILSVRC2012_img_train.tar" if cut == "inside_a_class_tar" else "ILSVRC2012_img_val.tar")
    data = archive.read_bytes()
    if cut == "inside_a_class_tar":
        data = data[:len(data) // 2]
    else:  # tarfile alone reads this as a complete archive of 5 images.
        with tarfile.open(archive) as tar:
            data = data[:tar.getmembers()[-1].offset]
    archive.write_bytes(data)
    with pytest.raises(ValueError, match=rf"^{archive}(: n01443537\.tar)?: truncated"):
        prepare("imagenet2012", source, tmp_path / "data", check=False)
    assert_nothing_written(tmp_path / "data")


def test_a_truncated_compressed_archive_is_refused(tmp_path):
    path = write_tar(tmp_path / "imagenet-r.tar.gz", {f"imagenet-r/{w}/{k}.jpg": jpeg((k, 1, 1))
                                                       for w in CLASSES for k in range(3)}, "w:gz")
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match=rf"^{path}: truncated or corrupt archive"):
        prepare("imagenet_r", path, tmp_path / "data", check=False)
    assert_nothing_written(tmp_path / "data")


def test_train_archive_and_train_folder_together_are_ambiguous(tmp_path):
    source = official_source(tmp_path / "src")
    write_tree(source / "train", train_files(1))
    with pytest.raises(ValueError, match=r"both ILSVRC2012_img_train\.tar and train hold the training images"):
        prepare("imagenet2012", source, tmp_path / "data", check=False)


# ----- the robustness sets ------------------------------------------------------------------------
def test_imagenet_a_r_and_v2_in_their_released_layouts(tmp_path, monkeypatch):
    a_files = {f"imagenet-a/{w}/0.{k}_{w}.jpg": jpeg(colour(s, k, 2)) for s, w in enumerate(CLASSES[:2])
               for k in range(2)}
    a_files["imagenet-a/README.txt"] = b"ImageNet-A"
    write_tar(tmp_path / "imagenet-a.tar", a_files)
    write_tree(tmp_path / "r", {f"imagenet-r/{w}/art_{k}.jpg": jpeg(colour(s, k, 2))
                                for s, w in enumerate(CLASSES) for k in range(1)})
    write_tar(tmp_path / "imagenetv2-matched-frequency.tar.gz",
              {f"imagenetv2-matched-frequency-format-val/{WNIDS.index(w)}/{k}abc.jpeg": jpeg(colour(s, k, 2))
               for s, w in enumerate(CLASSES) for k in range(2)}, "w:gz")
    with pytest.raises(ValueError, match=r"imagenet_a from .*imagenet-a\.tar: 2 classes, expected 200; pass "
                                         r"--classes"):
        prepare("imagenet_a", tmp_path / "imagenet-a.tar", tmp_path / "data")
    full_set_is(monkeypatch, "imagenet_a", 2, {"test": 4})
    full_set_is(monkeypatch, "imagenet_r", 3, {"test": 3})
    full_set_is(monkeypatch, "imagenet_v2", 3, {"test": 6}, {"test": 2})
    prepare("imagenet_a", tmp_path / "imagenet-a.tar", tmp_path / "data")
    prepare("imagenet_r", tmp_path / "r", tmp_path / "data")
    prepare("imagenet_v2", tmp_path / "imagenetv2-matched-frequency.tar.gz", tmp_path / "data")
    for name, classes, per_class in (("imagenet_a", CLASSES[:2], 2), ("imagenet_r", CLASSES, 1),
                                     ("imagenet_v2", CLASSES, 2)):
        ds, got = read_back(name, tmp_path / "data")
        assert ds.num_classes == 1000  # The 1,000-way label space.
        assert_images(got, [(WNIDS.index(w), colour(CLASSES.index(w), k, 2)) for w in classes
                            for k in range(per_class)])
    assert (tmp_path / "data/imagenet_v2/matched-frequency/3.0.0/ub_prepared.json").exists()
    builder = tfds.builder("imagenet_r", data_dir=tmp_path / "data")
    assert sorted(ex["file_name"].decode() for ex in tfds.as_numpy(builder.as_dataset(split="test"))) == \
        sorted(f"{w}/art_0.jpg" for w in CLASSES)


def imagenet_c_files(configs, size=(224, 224)):
    return {f"{c}/{s}/{w}/ILSVRC2012_val_{k:08d}.JPEG": jpeg(colour(slot, k, 2), size=size)
            for c, s in configs for slot, w in enumerate(CLASSES) for k in range(2)}


def test_imagenet_c_from_a_category_archive_and_a_folder(tmp_path):
    source = tmp_path / "imagenet-c"
    blur = imagenet_c_files([("defocus_blur", 1), ("motion_blur", 5)])
    blur = dict(sorted(blur.items(), key=lambda item: item[0].split("/")[2]))  # Configs interleaved.
    write_tar(write_tree(source, imagenet_c_files([("fog", 3)])) / "blur.tar", blur)
    with pytest.raises(ValueError, match=r"missing 72 of the 75 benchmark configs \(gaussian_noise_1, .*\); pass "
                                         r"--nocheck_counts"):
        prepare("imagenet2012_corrupted", source, tmp_path / "data")
    assert_nothing_written(tmp_path / "data")
    [root] = prepare("imagenet2012_corrupted", source, tmp_path / "data", check=False,
                     classes=list(CLASSES[:2]))
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == \
        ["defocus_blur_1", "fog_3", "motion_blur_5"]
    for corruption, severity in (("fog", 3), ("motion_blur", 5)):
        ds, got = read_back("imagenet2012_corrupted", tmp_path / "data", corruption_type=corruption,
                            severity=severity)
        assert ds.num_examples == 4
        assert_images(got, [(WNIDS.index(w), colour(s, k, 2)) for s, w in enumerate(CLASSES[:2]) for k in range(2)])
    record = json.loads((root / "motion_blur_5/3.1.0/ub_prepared.json").read_text())
    assert record["dataset"] == "imagenet2012_corrupted/motion_blur_5" and record["source"].endswith("blur.tar")
    # Asked again: every config is kept.
    assert prepare("imagenet2012_corrupted", source, tmp_path / "data", check=False,
                   classes=list(CLASSES[:2])) == [root]


def test_imagenet_c_refuses_unknown_corruptions_and_wrong_sizes(tmp_path):
    write_tree(tmp_path / "a", imagenet_c_files([("fogg", 3)]))
    with pytest.raises(ValueError, match=r"fogg/3/n01440764/ILSVRC2012_val_00000000\.JPEG: unknown corruption "
                                         r"folder 'fogg'"):
        prepare("imagenet2012_corrupted", tmp_path / "a", tmp_path / "data", check=False)
    write_tar(tmp_path / "b.tar", imagenet_c_files([("fog", 3)], size=(100, 80)))
    with pytest.raises(ValueError, match=r"b\.tar: fog/3/n01440764/ILSVRC2012_val_00000000\.JPEG: image is "
                                         r"100x80, expected 224x224"):
        prepare("imagenet2012_corrupted", tmp_path / "b.tar", tmp_path / "data", check=False,
                classes=list(CLASSES))
    assert_nothing_written(tmp_path / "data")


# ----- the fingerprint and the command ----------------------------------------------------------
def test_the_fingerprint_is_names_sizes_and_archive_ends(tmp_path):
    big = bytearray(np.random.default_rng(0).integers(0, 256, 3 * 2**20, dtype=np.uint8).tobytes())
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.tar").write_bytes(big)
    first = ip.cheap_fingerprint(tmp_path / "src", [tmp_path / "src"])
    assert (first["files"], first["bytes"]) == (1, len(big))
    big[-1] ^= 1  # The last MiB is hashed.
    (tmp_path / "src" / "a.tar").write_bytes(big)
    second = ip.cheap_fingerprint(tmp_path / "src", [tmp_path / "src"])
    assert second["sha256"] != first["sha256"]
    big[len(big) // 2] ^= 1  # The middle is not (documented): the price of not reading 150 GB.
    (tmp_path / "src" / "a.tar").write_bytes(big)
    assert ip.cheap_fingerprint(tmp_path / "src", [tmp_path / "src"]) == second


def test_the_command_takes_a_class_subset_and_a_label_file(tmp_path, capsys):
    """The flags reach prepare: --classes (a list), --val_labels, --nocheck_counts; errors are one line."""
    write_tree(tmp_path / "src" / "train", train_files(1))
    labels = val_labels(1)
    write_tar(tmp_path / "src" / "ILSVRC2012_img_val.tar", val_files(labels))
    (tmp_path / "labels.txt").write_text("".join(f"ILSVRC2012_val_{i:08d}.JPEG {w}\n"
                                                 for i, w in enumerate(labels, start=1)))
    flag_values = flags.FlagValues()  # The command's flags and main, in this process (a subprocess
    prepare_module._define_flags(flag_values)  # would spend most of this file's time importing TF).
    argv = flag_values(["prepare", "imagenet2012", "--source", str(tmp_path / "src"), "--data_dir",
                        str(tmp_path / "data"), f"--classes={CLASSES[0]},{CLASSES[2]}", "--val_labels",
                        str(tmp_path / "labels.txt"), "--nocheck_counts"])
    with pytest.raises(SystemExit) as exit_status:
        prepare_module.main(argv, flag_values)
    assert exit_status.value.code == 0
    assert f"prepared {tmp_path / 'data/imagenet2012/5.1.0'}" in capsys.readouterr().out
    argv = flag_values(["prepare", "imagenet_a", "--source", str(tmp_path / "src"), "--data_dir",
                        str(tmp_path / "data"), "--classes=n01440764,cat"])
    with pytest.raises(SystemExit) as exit_status:
        prepare_module.main(argv, flag_values)
    assert exit_status.value.code == 2
    assert capsys.readouterr().err == \
        "prepare imagenet_a: error: --classes: cat is not an ILSVRC-2012 wnid (such as n01440764)\n"
    record = json.loads((tmp_path / "data/imagenet2012/5.1.0/ub_prepared.json").read_text())
    assert record["examples"] == {"validation": 2, "train": 2} and record["options"]["classes"] == 2
    assert record["counts_checked"] is False
