// The Attention Viewer's panel: the DOM that the node's DOM widget holds. Every text from the
// payload is set with textContent (words are user input).

import {ViewerData} from "./data.js";

const PLAY_INTERVAL_MS = 450;
const CHART_WIDTH = 380;
const CHART_HEIGHT = 150;
const CHART_MARGIN = {left: 34, right: 8, top: 8, bottom: 20};
const LINE_COLOURS = ["#4e9af1", "#f1a34e", "#5cc46b", "#e8575a", "#b07ee8", "#e6d45a", "#4ed2d2", "#f17ec2",
                      "#a0a0a0", "#9acd32"];
const NEGATIVE_START_COLOUR = "#e8575a";
const NOT_EVALUATED_SHADE = "rgba(200, 150, 110, 0.18)";  // steps a cache skipped
const RANKED_WORDS = 8;

const STYLE = `
.dn-attention-viewer { display: flex; flex-direction: column; gap: 6px; padding: 4px; box-sizing: border-box;
  font: 12px sans-serif; color: var(--input-text, #ddd); overflow: auto; width: 100%; height: 100%; }
.dn-attention-viewer .dn-row { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
.dn-attention-viewer select, .dn-attention-viewer button { font: inherit; color: inherit;
  background: var(--comfy-input-bg, #222); border: 1px solid var(--border-color, #555); border-radius: 4px;
  padding: 1px 4px; }
.dn-attention-viewer label { display: flex; gap: 3px; align-items: center; }
.dn-attention-viewer .dn-step { flex: 1; min-width: 80px; }
.dn-attention-viewer .dn-stage { position: relative; width: 100%; max-width: 360px; align-self: center;
  background: #000; cursor: crosshair; }
.dn-attention-viewer .dn-stage img, .dn-attention-viewer .dn-stage canvas { position: absolute; inset: 0;
  width: 100%; height: 100%; }
.dn-attention-viewer .dn-heat { image-rendering: pixelated; pointer-events: none; }
.dn-attention-viewer .dn-cursor { position: absolute; display: none; box-sizing: border-box;
  border: 1px solid #fff; outline: 1px solid #000; pointer-events: none; }
.dn-attention-viewer .dn-absent { position: absolute; inset: auto 0 0 0; padding: 2px 4px;
  background: rgba(0, 0, 0, .7); color: #fff; pointer-events: none; }
.dn-attention-viewer .dn-readout { min-height: 1.3em; }
.dn-attention-viewer .dn-ranking { margin: 0; padding: 0; min-height: 1.3em; list-style: none; display: flex;
  flex-wrap: wrap; gap: 0 10px; }
.dn-attention-viewer .dn-chart { width: ${CHART_WIDTH}px; height: ${CHART_HEIGHT}px; align-self: center;
  cursor: pointer; }
.dn-attention-viewer .dn-legend { display: flex; flex-wrap: wrap; gap: 2px 10px; justify-content: center; }
.dn-attention-viewer .dn-swatch { display: inline-block; width: 14px; height: 0; margin-right: 3px;
  vertical-align: middle; border-top: 2px solid; }
`;

function element(tag, className, parent) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    parent?.appendChild(node);
    return node;
}

function labelled(text, control, parent) {
    const label = element("label", "", parent);
    label.append(document.createTextNode(text), control);
    return control;
}

function fillSelect(select, options, chosen) {
    select.replaceChildren(...options.map(([value, text]) => {
        const option = document.createElement("option");
        option.value = String(value);
        option.textContent = text;
        return option;
    }));
    select.value = String(options.some(([value]) => String(value) === String(chosen)) ? chosen : options[0]?.[0]);
}

function percent(share) {
    return `${(share * 100).toFixed(share < 0.1 ? 2 : 1)}%`;
}

const BRANCH_NAMES = {positive: "+ positive", unconditional: "− unconditional", influence: "Δ negative influence"};
const LINE_PREFIX = {positive: "+", unconditional: "−", influence: "Δ"};
const INFLUENCE_COLOUR = "#f0f0f0";

export class AttentionViewerPanel {
    constructor(imageURL) {
        this.imageURL = imageURL;  // ({filename, subfolder, type}) => URL of the saved image
        this.state = {step: 0, branch: "positive", track: 0, item: 0, colormap: "viridis",
                      normalization: "per word over steps", opacity: 0.6};
        this.data = null;
        this.timer = null;

        const root = this.root = element("div", "dn-attention-viewer");
        element("style", "", root).textContent = STYLE;
        this.empty = element("div", "dn-empty", root);
        this.empty.textContent = "Run the workflow: the attention maps of the run show here.";
        const body = this.body = element("div", "dn-body", root);
        body.style.cssText = "display: none; flex-direction: column; gap: 6px;";

        const playRow = element("div", "dn-row", body);
        this.play = element("button", "dn-play", playRow);
        this.play.type = "button";
        this.play.textContent = "▶";
        this.play.title = "Play the steps";
        this.play.addEventListener("click", () => this.togglePlay());
        this.slider = element("input", "dn-step", playRow);
        this.slider.type = "range";
        this.slider.min = "0";
        this.slider.step = "1";
        this.slider.addEventListener("input", () => this.set({step: Number(this.slider.value)}));
        this.stepText = element("span", "dn-step-text", playRow);

        const pickRow = element("div", "dn-row", body);
        this.branchSelect = labelled("branch", element("select", "dn-branch"), pickRow);
        this.branchSelect.addEventListener("change", () => this.pickBranch(this.branchSelect.value));
        this.wordSelect = labelled("word", element("select", "dn-word"), pickRow);
        this.wordSelect.addEventListener("change", () => this.set({track: Number(this.wordSelect.value)}));
        this.itemSelect = labelled("image", element("select", "dn-item"), pickRow);
        this.itemSelect.addEventListener("change", () => this.set({item: Number(this.itemSelect.value)}));

        const lookRow = element("div", "dn-row", body);
        this.colormapSelect = labelled("colours", element("select", "dn-colormap"), lookRow);
        this.colormapSelect.addEventListener("change", () => this.set({colormap: this.colormapSelect.value}));
        this.normalizationSelect = labelled("scale", element("select", "dn-normalization"), lookRow);
        this.normalizationSelect.addEventListener("change",
            () => this.set({normalization: this.normalizationSelect.value}));
        this.opacitySlider = labelled("opacity", element("input", "dn-opacity"), lookRow);
        Object.assign(this.opacitySlider, {type: "range", min: "0", max: "1", step: "0.05"});
        this.opacitySlider.addEventListener("input", () => this.set({opacity: Number(this.opacitySlider.value)}));

        this.stage = element("div", "dn-stage", body);
        this.image = element("img", "dn-image", this.stage);
        this.image.alt = "";
        this.heat = element("canvas", "dn-heat", this.stage);
        this.absent = element("div", "dn-absent", this.stage);
        this.cursor = element("div", "dn-cursor", this.stage);
        this.stage.addEventListener("mousemove", (event) => this.hover(event));
        this.stage.addEventListener("mouseleave", () => this.hover(null));
        this.readout = element("div", "dn-readout", body);
        this.ranking = element("ol", "dn-ranking", body);

        this.status = element("div", "dn-status", body);
        this.chart = element("canvas", "dn-chart", body);
        this.chart.addEventListener("click", (event) => this.set({step: this.chartStep(event)}));
        this.legend = element("div", "dn-legend", body);
    }

    show(payload) {
        this.stopPlay();
        this.data = new ViewerData(payload);
        const data = this.data;
        const branches = data.branches();
        const branch = branches.includes(this.state.branch) ? this.state.branch : branches[0];
        this.state.step = Math.min(this.state.step, data.steps - 1);
        this.state.item = Math.min(this.state.item, data.batch - 1);
        if (!data.payload.colormaps[this.state.colormap]) this.state.colormap = Object.keys(data.colormaps)[0];
        this.empty.style.display = "none";
        this.body.style.display = "flex";
        this.slider.max = String(data.steps - 1);
        fillSelect(this.branchSelect, branches.map((name) => [name, BRANCH_NAMES[name] ?? name]), branch);
        fillSelect(this.itemSelect, [...Array(data.batch).keys()].map((item) => [item, String(item)]),
                   this.state.item);
        fillSelect(this.colormapSelect, Object.keys(data.colormaps).map((name) => [name, name]), this.state.colormap);
        fillSelect(this.normalizationSelect, data.payload.normalizations.map((mode) => [mode, mode]),
                   this.state.normalization);
        this.stage.style.aspectRatio = `${data.width} / ${data.height}`;
        this.heat.width = data.width;
        this.heat.height = data.height;
        this.pickBranch(branch);
    }

    pickBranch(branch) {
        const tracks = this.data.tracksOf(branch);
        const current = this.data.tracks[this.state.track];
        const same = tracks.find((track) => current && track.word === current.word && track.index === this.state.track);
        const chosen = same ?? tracks[0];
        fillSelect(this.wordSelect, tracks.map((track) => [track.index, track.label]), chosen.index);
        this.set({branch, track: chosen.index});
    }

    set(changes) {
        Object.assign(this.state, changes);
        if (this.data) this.render();
    }

    render() {
        const {data, state} = this;
        this.slider.value = String(state.step);
        this.opacitySlider.value = String(state.opacity);
        this.stepText.textContent = `step ${state.step} of ${data.steps - 1}`;
        const images = data.payload.images;
        const saved = images[state.item] ?? images[0];
        const source = saved ? this.imageURL(saved) : "";
        if (this.image.getAttribute("src") !== source) this.image.src = source;

        const pixels = data.colour(state.step, state.track, state.item, state.normalization, state.colormap);
        const context = this.heat.getContext("2d");
        context.clearRect(0, 0, data.width, data.height);
        const track = data.tracks[state.track];
        if (pixels) {
            context.putImageData(new ImageData(pixels, data.width, data.height), 0, 0);
            this.absent.textContent = "";
            this.absent.style.display = "none";
        } else if (data.notEvaluated.has(state.step)) {
            this.absent.textContent = `Step ${state.step} was not evaluated: a cache reused an earlier ` +
                "prediction, so no attention was computed there";
            this.absent.style.display = "block";
        } else if (track.branch === "influence") {
            this.absent.textContent = `No negative influence at step ${state.step}: the negative prompt was not in ` +
                "the unconditional branch (or there was no guidance)";
            this.absent.style.display = "block";
        } else {
            this.absent.textContent = `“${track.label}” is not in the ${track.branch} branch at step ${state.step}` +
                (track.prompt === "negative" && data.negativeStart !== null
                    ? ` (the negative starts at step ${data.negativeStart})` : "");
            this.absent.style.display = "block";
        }
        this.heat.style.opacity = String(state.opacity);
        this.heat.dataset.step = String(state.step);
        this.heat.dataset.track = String(state.track);
        this.heat.dataset.item = String(state.item);

        const sigma = data.payload.sigmas[state.step];
        const cfg = data.payload.cfg?.[state.step];
        const parts = [`step ${state.step}`];
        if (sigma !== undefined) parts.push(`sigma ${sigma.toFixed(3)}`);
        if (cfg !== undefined && cfg !== null) parts.push(`cfg ${cfg}`);
        const share = data.influenceShare?.[state.step]?.[state.item];
        if (track.branch === "influence" && share !== undefined && share !== null) {
            parts.push(`negative influence ${percent(share)} of the guidance`);
        }
        parts.push(data.negativeStart === null ? "no negative prompt recorded"
            : `negative from step ${data.negativeStart}`);
        this.status.textContent = parts.join(" · ");
        if (this.lastHover) this.hover(this.lastHover);
        this.drawChart();
    }

    pixelAt(event) {
        const box = this.stage.getBoundingClientRect();
        const x = Math.floor((event.clientX - box.left) / box.width * this.data.width);
        const y = Math.floor((event.clientY - box.top) / box.height * this.data.height);
        if (x < 0 || y < 0 || x >= this.data.width || y >= this.data.height) return null;
        return {x, y, pixel: y * this.data.width + x};
    }

    hover(event) {
        this.lastHover = event;
        const at = event && this.data ? this.pixelAt(event) : null;
        this.cursor.style.display = at ? "block" : "none";
        if (at) {
            Object.assign(this.cursor.style, {left: `${at.x / this.data.width * 100}%`, top: `${at.y / this.data.height * 100}%`,
                                              width: `${100 / this.data.width}%`, height: `${100 / this.data.height}%`});
        }
        if (!at) {
            this.readout.textContent = "Hover over the image: each word's share of the attention there.";
            this.ranking.replaceChildren();
            return;
        }
        const {state, data} = this;
        const track = data.tracks[state.track];
        const share = data.value(state.step, state.track, state.item, at.pixel);
        const reading = () => (track.branch === "influence" ? `${share.toFixed(4)} (latent units)`
            : `${percent(share)} of the attention`);
        this.readout.textContent = `(${at.x}, ${at.y}) step ${state.step}: ` +
            (share === null ? `“${track.label}” absent` : `“${track.label}” ${reading()}`);
        this.ranking.replaceChildren(...data.ranked(state.step, state.branch, state.item, at.pixel)
            .slice(0, RANKED_WORDS).map((entry, rank) => {
                const line = document.createElement("li");
                line.textContent = `${rank + 1}. ${entry.label} ${percent(entry.share)}`;
                if (entry.index === state.track) line.style.fontWeight = "bold";
                return line;
            }));
    }

    chartBox() {
        return {left: CHART_MARGIN.left, top: CHART_MARGIN.top, width: CHART_WIDTH - CHART_MARGIN.left - CHART_MARGIN.right,
                height: CHART_HEIGHT - CHART_MARGIN.top - CHART_MARGIN.bottom};
    }

    stepX(step) {
        const box = this.chartBox();
        return box.left + (this.data.steps > 1 ? step / (this.data.steps - 1) : 0.5) * box.width;
    }

    chartStep(event) {
        const rect = this.chart.getBoundingClientRect();
        const box = this.chartBox();
        const x = (event.clientX - rect.left) / rect.width * CHART_WIDTH;
        const fraction = Math.min(1, Math.max(0, (x - box.left) / box.width));
        return Math.round(fraction * (this.data.steps - 1));
    }

    // Fig. 1 of the paper: each word's mean share per step, positive solid, unconditional dashed.
    drawChart() {
        const {data, state} = this;
        const scale = window.devicePixelRatio || 1;
        this.chart.width = CHART_WIDTH * scale;
        this.chart.height = CHART_HEIGHT * scale;
        const context = this.chart.getContext("2d");
        context.setTransform(scale, 0, 0, scale, 0, 0);
        context.clearRect(0, 0, CHART_WIDTH, CHART_HEIGHT);
        const box = this.chartBox();
        // The negative influence (latent units) on a scale of its own, its largest value at the same height.
        const tops = [0, 0];
        for (let step = 0; step < data.steps; step++) {
            data.tracks.forEach((_, track) => {
                const kind = data.isInfluence(track) ? 1 : 0;
                tops[kind] = Math.max(tops[kind], data.strength(step, track, state.item) ?? 0);
            });
        }
        const [top, influenceTop] = tops.map((value) => (value > 0 ? value * 1.1 : 1));
        const y = (value) => box.top + box.height * (1 - value / top);

        context.strokeStyle = "#777";
        context.lineWidth = 1;
        context.strokeRect(box.left, box.top, box.width, box.height);
        context.fillStyle = "#aaa";
        context.font = "10px sans-serif";
        context.textAlign = "right";
        context.fillText(percent(top / 1.1), box.left - 3, y(top / 1.1) + 3);
        context.fillText("0", box.left - 3, y(0) + 3);
        context.textAlign = "center";
        context.fillText("0", this.stepX(0), CHART_HEIGHT - 6);
        context.fillText(String(data.steps - 1), this.stepX(data.steps - 1), CHART_HEIGHT - 6);
        context.fillText("step", box.left + box.width / 2, CHART_HEIGHT - 6);

        context.fillStyle = NOT_EVALUATED_SHADE;
        for (const step of data.notEvaluated) {
            const half = box.width / Math.max(1, data.steps - 1) / 2;
            context.fillRect(this.stepX(step) - half, box.top, 2 * half, box.height);
        }

        if (data.negativeStart !== null) {
            context.strokeStyle = NEGATIVE_START_COLOUR;
            context.setLineDash([2, 3]);
            context.beginPath();
            context.moveTo(this.stepX(data.negativeStart), box.top);
            context.lineTo(this.stepX(data.negativeStart), box.top + box.height);
            context.stroke();
            context.fillStyle = NEGATIVE_START_COLOUR;
            context.textAlign = "left";
            context.fillText("negative starts", this.stepX(data.negativeStart) + 3, box.top + 10);
        }

        data.tracks.forEach((track, index) => {
            const influence = data.isInfluence(index);
            const lineY = influence ? (value) => y(value * top / influenceTop) : y;
            context.strokeStyle = influence ? INFLUENCE_COLOUR : LINE_COLOURS[index % LINE_COLOURS.length];
            context.lineWidth = index === state.track ? 3 : 1.5;
            context.setLineDash(track.branch === "unconditional" ? [5, 3] : []);
            context.beginPath();
            let drawing = false;
            for (let step = 0; step < data.steps; step++) {
                const value = data.strength(step, index, state.item);
                if (value === null) { drawing = false; continue; }
                if (drawing) context.lineTo(this.stepX(step), lineY(value));
                else context.moveTo(this.stepX(step), lineY(value));
                drawing = true;
            }
            context.stroke();
        });

        context.setLineDash([]);
        context.strokeStyle = "#fff";
        context.lineWidth = 1;
        context.beginPath();
        context.moveTo(this.stepX(state.step), box.top);
        context.lineTo(this.stepX(state.step), box.top + box.height);
        context.stroke();

        this.legend.replaceChildren(...data.tracks.map((track, index) => {
            const entry = document.createElement("span");
            const swatch = element("span", "dn-swatch", entry);
            swatch.style.borderTopColor = data.isInfluence(index) ? INFLUENCE_COLOUR
                : LINE_COLOURS[index % LINE_COLOURS.length];
            swatch.style.borderTopStyle = track.branch === "unconditional" ? "dashed" : "solid";
            const scale = data.isInfluence(index) ? ` (own scale, up to ${(influenceTop / 1.1).toFixed(3)})` : "";
            entry.append(document.createTextNode(`${LINE_PREFIX[track.branch] ?? ""} ${track.label}${scale}`));
            if (index === state.track) entry.style.fontWeight = "bold";
            return entry;
        }));
    }

    togglePlay() {
        if (this.timer) {
            this.stopPlay();
            return;
        }
        this.play.textContent = "❚❚";
        this.play.title = "Pause";
        this.timer = setInterval(() => this.set({step: (this.state.step + 1) % this.data.steps}), PLAY_INTERVAL_MS);
    }

    stopPlay() {
        clearInterval(this.timer);
        this.timer = null;
        this.play.textContent = "▶";
        this.play.title = "Play the steps";
    }

    remove() {
        this.stopPlay();
    }
}
