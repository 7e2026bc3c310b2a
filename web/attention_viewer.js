// Attention Viewer (Delayed Negative): the node's DOM widget. The node returns the maps of its run
// once (render/viewer_payload.py); exploring steps, words, branches and images happens here and
// queues nothing. A DOM widget (addDOMWidget), so it works in the classic canvas and in Nodes 2.0.

import {app} from "../../scripts/app.js";
import {api} from "../../scripts/api.js";
import {AttentionViewerPanel} from "./viewer/panel.js";

const NODE_TYPE = "DelayedNegativeAttentionViewer";
const UI_KEY = "delayed_negative_attention_viewer";  // nodes/attention_viewer.py
const MIN_WIDTH = 440;
const MIN_HEIGHT = 800;  // the node; its widget takes all but the two input slots

function imageURL(saved) {
    const query = new URLSearchParams({filename: saved.filename, subfolder: saved.subfolder ?? "",
                                       type: saved.type ?? "temp"});
    return api.apiURL(`/view?${query}`);
}

app.registerExtension({
    name: "DelayedNegative.AttentionViewer",

    nodeCreated(node) {
        if ((node.comfyClass ?? node.type) !== NODE_TYPE) return;
        const panel = new AttentionViewerPanel(imageURL);
        const widget = node.addDOMWidget("attention_viewer", "delayed_negative_attention_viewer", panel.root, {
            serialize: false,
            hideOnZoom: false,
            getMinHeight: () => MIN_HEIGHT - 80,
        });
        widget.serialize = false;
        node.attentionViewer = panel;
        node.setSize([Math.max(node.size[0], MIN_WIDTH), Math.max(node.size[1], MIN_HEIGHT)]);

        const onExecuted = node.onExecuted;
        node.onExecuted = function (output) {
            onExecuted?.apply(this, arguments);
            const payload = output?.[UI_KEY]?.[0];
            if (payload) panel.show(payload);
        };
        const onRemoved = node.onRemoved;
        node.onRemoved = function () {
            panel.remove();
            return onRemoved?.apply(this, arguments);
        };
    },
});
