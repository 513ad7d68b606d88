/*
 * OrbitLab panel for the Proxmox VE web UI: shared helpers.
 *
 * The panel is static code (/usr/share/pve-manager/js/orbitlab.js, served
 * as /pve2/js/orbitlab.js), loaded after pvemanagerlib.js by the one line
 * orbitlab-ui-hook puts into pve-manager's index.html.tpl. Its data comes
 * from this node's orbitlab-agent HTTPS API (default port 8206), never from
 * pveproxy: every request whose URL starts with /api2/json/orbitlab or
 * /api2/extjs/orbitlab is sent to https://<this page's host>:<port> with
 * the browser's credentials (the PVEAuthCookie ticket); the widget
 * toolkit's own beforerequest listener adds the CSRFPreventionToken header.
 * The agent checks the ticket, the token and the same privileges as the
 * orbitlab command, and answers only this node's UI origins (CORS).
 */
Ext.define('OrbitLab.Utils', {
    singleton: true,

    // The agent's default port (orbitlab-agent --api-listen); a browser can
    // be pointed at another with localStorage 'orbitlab-api-port'.
    defaultPort: 8206,

    // Paths of the API tree on the agent.
    jsonBase: '/api2/json/orbitlab',
    extjsBase: '/api2/extjs/orbitlab',

    agentOrigin: function () {
        let port = parseInt(window.localStorage.getItem('orbitlab-api-port'), 10);
        if (!(port > 0 && port < 65536)) {
            port = OrbitLab.Utils.defaultPort;
        }
        // location.hostname keeps an IPv6 address's brackets.
        return 'https://' + window.location.hostname + ':' + port;
    },

    isAgentUrl: function (url) {
        return typeof url === 'string' && /^\/api2\/(json|extjs)\/orbitlab(-apply)?([/?]|$)/.test(url);
    },

    // Proxmox.Utils.API2Request against the agent: 'url' is a path of the
    // OrbitLab tree ('/sectors/web'), answered in pveproxy's extjs format.
    API2Request: function (options) {
        let opts = Ext.apply({}, options);
        opts.url = OrbitLab.Utils.extjsBase + options.url;
        Proxmox.Utils.API2Request(opts);
    },

    // What this user may do, from the same source the agent asks: the
    // user's privileges on / as Proxmox reports them (GET
    // /access/permissions?path=/). Asked once per user and page.
    privileges: undefined,

    withPrivileges: function (callback) {
        let me = OrbitLab.Utils;
        if (me.privileges && me.privileges.user === Proxmox.UserName) {
            callback(me.privileges);
            return;
        }
        Proxmox.Utils.API2Request({
            url: '/access/permissions',
            params: { path: '/' },
            method: 'GET',
            success: function (response) {
                let held = (response.result.data || {})['/'] || {};
                let has = (p) => !!held[p];
                let modify = has('Sys.Modify');
                me.privileges = {
                    user: Proxmox.UserName,
                    audit: has('Sys.Audit'),
                    modify: modify,
                    sectors: modify && has('SDN.Allocate'),
                    instances: modify && has('VM.Allocate'),
                    appliances: modify && has('Datastore.AllocateTemplate'),
                    reveal: has('Sys.Audit') && modify && has('Sys.Console'),
                };
                callback(me.privileges);
            },
            failure: () => callback({}),
        });
    },

    // Shows the components of 'container' marked with 'orbitlabPrivilege'
    // (hidden until then) when the user holds that privilege.
    applyPrivileges: function (container) {
        OrbitLab.Utils.withPrivileges(function (privileges) {
            if (container.isDestroyed || container.destroyed) {
                return;
            }
            container.query('[orbitlabPrivilege]').forEach(function (cmp) {
                cmp.setHidden(!privileges[cmp.orbitlabPrivilege]);
            });
        });
    },

    // Whether the user may do 'what' (as far as known yet).
    may: function (what) {
        let privileges = OrbitLab.Utils.privileges;
        return !!(privileges && privileges.user === Proxmox.UserName && privileges[what]);
    },

    // The phase an agent reported, with Proxmox's status icons.
    render_phase: function (value, metaData, record) {
        let phase = value || gettext('Pending');
        let icon = {
            Ready: 'fa fa-check-circle good',
            Failed: 'fa fa-times-circle critical',
            Unavailable: 'fa fa-exclamation-triangle warning',
            Progressing: 'fa fa-refresh fa-spin',
        }[phase] || 'fa fa-clock-o';
        let message = record && record.get ? record.get('message') : undefined;
        if (message) {
            metaData.tdAttr = 'data-qtip="' + Ext.htmlEncode(Ext.htmlEncode(message)) + '"';
        }
        return '<i class="' + icon + '"></i> ' + Ext.htmlEncode(phase);
    },

    render_expiry: function (notAfter) {
        if (!notAfter) {
            return '-';
        }
        let date = typeof notAfter === 'number' ? new Date(notAfter * 1000) : new Date(notAfter);
        let days = Math.floor((date - new Date()) / 86400000);
        let text = Ext.Date.format(date, 'Y-m-d H:i') + ' (' + days + ' ' + gettext('days') + ')';
        if (days < 0) {
            return '<i class="fa fa-times-circle critical"></i> ' + text;
        }
        return days < 30 ? '<i class="fa fa-exclamation-triangle warning"></i> ' + text : text;
    },

    // The manifest of a record of an 'orbitlab-object' store, for editing.
    objectOf: function (rec) {
        let metadata = { name: rec.get('name') };
        if (rec.get('labels')) {
            metadata.labels = Ext.clone(rec.get('labels'));
        }
        if (rec.get('description')) {
            metadata.description = rec.get('description');
        }
        return {
            apiVersion: 'orbitlab.io/v1',
            kind: rec.get('kind'),
            metadata: metadata,
            spec: Ext.clone(rec.get('spec')),
        };
    },

    // A manifest from a form's values: 'metadata.name' and 'spec.cidr'
    // style field names become nested members; empty values are left out.
    manifest: function (kind, values, base) {
        let manifest = Ext.clone(base || {});
        manifest.apiVersion = manifest.apiVersion || 'orbitlab.io/v1';
        manifest.kind = kind;
        manifest.metadata = manifest.metadata || {};
        manifest.spec = manifest.spec || {};
        delete manifest.status;
        Ext.Object.each(values, function (key, value) {
            let path = key.split('.');
            let target = manifest;
            for (let i = 0; i < path.length - 1; i++) {
                target[path[i]] = target[path[i]] || {};
                target = target[path[i]];
            }
            let last = path[path.length - 1];
            if (value === '' || value === null || value === undefined) {
                delete target[last];
            } else {
                target[last] = value;
            }
        });
        return manifest;
    },

    // A field's name for an error the API reported: the API names
    // manifest fields ('spec.cidr', 'spec.ingress[0].port'); a form field
    // carries the same name, or the part before the first index.
    // Reasons are HTML-encoded: ExtJS shows field errors as HTML, and a
    // reason may quote what was typed.
    errorsForForm: function (errors) {
        let out = {};
        Ext.Object.each(errors || {}, function (field, reason) {
            reason = Ext.htmlEncode(reason);
            out[field] = reason;
            let base = field.replace(/\[\d+\].*$/, '');
            if (base !== field && out[base] === undefined) {
                out[base] = reason;
            }
        });
        return out;
    },

    // The Remove button of a list of OrbitLab objects: asks first ('message'
    // names the object as {0}), then DELETE /<collection>/<name> (the
    // agent refuses while others refer to it, naming them); 'done' runs
    // after, whatever the outcome. Shown to users holding 'privilege'.
    removeButton: function (config) {
        return {
            xtype: 'proxmoxButton',
            text: gettext('Remove'),
            itemId: 'remove',
            hidden: true,
            orbitlabPrivilege: config.privilege,
            disabled: true,
            dangerous: true,
            confirmMsg: (rec) => Ext.String.format(config.message, Ext.htmlEncode("'" + rec.get('name') + "'")),
            handler: function (btn, event, rec) {
                OrbitLab.Utils.API2Request({
                    url: '/' + config.collection + '/' + encodeURIComponent(rec.get('name')),
                    method: 'DELETE',
                    waitMsgTarget: config.waitMsgTarget,
                    callback: config.done,
                    failure: (response) => Ext.Msg.alert(gettext('Error'), response.htmlStatus),
                });
            },
        };
    },

    // Keeps 'stores' (OrbitLab.data.UpdateStore) refreshing while
    // 'component' is shown, from now on, and destroys 'owned' (default:
    // the stores themselves; a DiffStore destroys its own) with it.
    refreshWhileShown: function (component, stores, owned) {
        component.on({
            activate: () => stores.forEach((s) => s.startUpdate()),
            deactivate: () => stores.forEach((s) => s.stopUpdate()),
            destroy: () => (owned || stores).forEach((s) => s.destroy()),
        });
        stores.forEach((s) => s.startUpdate());
    },

    // Shows a store's load errors on 'component' as Proxmox's views do
    // (an error mask with the agent's message); when the agent cannot be
    // reached at all (down, or its certificate not trusted by this browser
    // yet), says so and where.
    monStoreErrors: function (component, store) {
        Proxmox.Utils.monStoreErrors(component, store, true, function (error) {
            if (error && error.status) {
                return false;
            }
            Proxmox.Utils.setErrorMask(
                component,
                Ext.htmlEncode(
                    Ext.String.format(
                        gettext('Cannot reach the OrbitLab agent at {0}: is orbitlab-agent running there, and does this browser trust its certificate (open {0} once)?'),
                        OrbitLab.Utils.agentOrigin(),
                    ),
                ),
            );
            return true;
        });
    },
});

Ext.Ajax.on('beforerequest', function (conn, options) {
    if (OrbitLab.Utils.isAgentUrl(options.url)) {
        options.url = OrbitLab.Utils.agentOrigin() + options.url;
        options.withCredentials = true;
        options.cors = true;
    }
});

// A store that reads an OrbitLab collection from the agent, refreshed in
// the background like Proxmox's own views (Proxmox.data.UpdateStore).
Ext.define('OrbitLab.data.UpdateStore', {
    extend: 'Proxmox.data.UpdateStore',
    alias: 'store.orbitlabUpdateStore',

    interval: 3000,

    constructor: function (config) {
        config = config || {};
        if (!config.fields && !config.model) {
            config.model = 'orbitlab-object';
        }
        Ext.applyIf(config, {
            proxy: {
                type: 'proxmox',
                url: OrbitLab.Utils.jsonBase + config.path,
            },
        });
        this.callParent([config]);
    },
});
