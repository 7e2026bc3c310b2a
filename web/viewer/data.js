// The Attention Viewer's payload (render/viewer_payload.py) decoded once, then read per step, word
// and batch item. No DOM here: values, normalisation and ranking only.

function bytesFromBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let index = 0; index < binary.length; index++) bytes[index] = binary.charCodeAt(index);
    return bytes;
}

export class ViewerData {
    constructor(payload) {
        this.payload = payload;
        this.steps = payload.steps;
        this.batch = payload.batch;
        this.height = payload.height;
        this.width = payload.width;
        this.tracks = payload.tracks;
        this.negativeStart = payload.negative_start;
        this.influenceShare = payload.influence_share ?? null;  // [step][item]: share of the guidance, or null
        this.notEvaluated = new Set(payload.not_evaluated || []);  // steps a cache skipped
        this.codes = bytesFromBase64(payload.maps);
        this.colormaps = Object.fromEntries(Object.entries(payload.colormaps)
            .map(([name, table]) => [name, bytesFromBase64(table)]));
        const expected = this.steps * this.tracks.length * this.batch * this.height * this.width;
        if (this.codes.length !== expected) {
            throw new Error(`Attention Viewer: ${this.codes.length} map bytes, expected ${expected}; ` +
                            "queue the workflow again.");
        }
    }

    branches() {
        return [...new Set(this.tracks.map((track) => track.branch))];
    }

    // The "negative influence" track: latent units, not a share of attention; scaled on its own.
    isInfluence(track) {
        return this.tracks[track].branch === "influence";
    }

    tracksOf(branch) {
        return this.tracks.map((track, index) => ({...track, index})).filter((track) => track.branch === branch);
    }

    scale(step, track, item) {
        return this.payload.scales[step][track][item];  // null: the word's prompt was not in its branch
    }

    present(step, track, item) {
        return this.scale(step, track, item) !== null;
    }

    // The map's values (share of each pixel's attention), or null where absent.
    map(step, track, item) {
        const scale = this.scale(step, track, item);
        if (scale === null) return null;
        const size = this.height * this.width;
        const offset = ((step * this.tracks.length + track) * this.batch + item) * size;
        const values = new Float64Array(size);
        for (let pixel = 0; pixel < size; pixel++) values[pixel] = this.codes[offset + pixel] * scale;
        return values;
    }

    value(step, track, item, pixel) {
        const scale = this.scale(step, track, item);
        if (scale === null) return null;
        const size = this.height * this.width;
        return this.codes[((step * this.tracks.length + track) * this.batch + item) * size + pixel] * scale;
    }

    strength(step, track, item) {
        return this.payload.strength[step][track][item];
    }

    // [low, high] that the map is scaled by, as render/normalize.py groups them: this map alone
    // ("per map"), this word over every step ("per word over steps"), or every word and step ("global";
    // the negative influence, in latent units, is a group of its own).
    range(mode, step, track, item) {
        const group = mode === "global" ? (this.isInfluence(track) ? "influence" : "") : track;
        const key = `${mode}|${mode === "per map" ? step : ""}|${group}|${item}`;
        this.ranges ??= new Map();
        if (!this.ranges.has(key)) this.ranges.set(key, this.measure(mode, step, track, item));
        return this.ranges.get(key);
    }

    measure(mode, step, track, item) {
        const groups = {
            "per map": [[step, track]],
            "per word over steps": [...Array(this.steps).keys()].map((each) => [each, track]),
            "global": [...Array(this.steps).keys()].flatMap((each) => this.tracks.map((_, word) => [each, word])
                .filter(([, word]) => this.isInfluence(word) === this.isInfluence(track))),
        }[mode];
        let low = Infinity;
        let high = -Infinity;
        for (const [each, word] of groups) {
            const values = this.map(each, word, item);
            if (!values) continue;
            for (const value of values) {
                if (value < low) low = value;
                if (value > high) high = value;
            }
        }
        return [low, high];
    }

    // RGBA pixels of the map coloured with `colormap` after normalisation; null where absent.
    colour(step, track, item, mode, colormap) {
        const values = this.map(step, track, item);
        if (!values) return null;
        const [low, high] = this.range(mode, step, track, item);
        const span = high > low ? high - low : 0;
        const table = this.colormaps[colormap];
        const pixels = new Uint8ClampedArray(values.length * 4);
        values.forEach((value, pixel) => {
            const level = span > 0 ? Math.min(1, Math.max(0, (value - low) / span)) : 0;
            const entry = Math.round(level * 255) * 3;
            pixels.set([table[entry], table[entry + 1], table[entry + 2], 255], pixel * 4);
        });
        return pixels;
    }

    // The words of one branch at one pixel and step, largest share first (absent words left out).
    ranked(step, branch, item, pixel) {
        if (branch === "influence") return [];
        return this.tracksOf(branch)
            .map((track) => ({label: track.label, index: track.index, share: this.value(step, track.index, item, pixel)}))
            .filter((entry) => entry.share !== null)
            .sort((first, second) => second.share - first.share);
    }
}
