/*
 * Appliances and templates: the containers OrbitLab runs for each Sector
 * (its gateway and DNS: node, VMID, appliance version, health as last
 * probed, from the Sectors' status), the appliance templates this node's
 * template storage holds (from Proxmox: /nodes/<node>/storage/<storage>/
 * content), and Appliance manifests that pin a template (none: the
 * templates of this OrbitLab version are used).
 */
Ext.define('OrbitLab.panel.Appliances', {
    extend: 'Ext.panel.Panel',
    alias: 'widget.orbitlabAppliances',

    scrollable: true,
    bodyPadding: 5,
    layout: { type: 'vbox', align: 'stretch' },
    defaults: { margin: '0 0 10 0' },

    initComponent: function () {
        let me = this;

        let sectors = Ext.create('OrbitLab.data.UpdateStore', { path: '/sectors' });
        let containers = Ext.create('Ext.data.Store', {
            fields: ['sector', 'role', 'node', 'vmid', 'version', 'health', 'probed'],
            sorters: ['sector', 'role'],
        });
        me.mon(sectors, 'load', function () {
            let rows = [];
            sectors.each(function (rec) {
                let out = rec.get('outputs');
                ['gateway', 'dns'].forEach(function (role) {
                    if (out[role + '/vmid'] !== undefined) {
                        rows.push({
                            sector: rec.get('name'),
                            role: role,
                            node: out[role + '/node'],
                            vmid: out[role + '/vmid'],
                            version: out[role + '/version'],
                            health: out[role + '/health'],
                            probed: out[role + '/probed'],
                        });
                    }
                });
            });
            containers.setData(rows);
        });

        // This node's template storage, as the Cluster manifest sets it.
        let templates = Ext.create('Ext.data.Store', {
            fields: ['volid', 'size', 'ctime'],
            sorters: 'volid',
        });
        let loadTemplates = function () {
            OrbitLab.Utils.API2Request({
                url: '/cluster',
                method: 'GET',
                success: function (response) {
                    if (me.destroyed) {
                        return;
                    }
                    let defaults = ((response.result.data || {}).spec || {}).defaults || {};
                    let storage = defaults.template_storage || 'local';
                    Proxmox.Utils.API2Request({
                        url: '/nodes/' + Proxmox.NodeName + '/storage/' + encodeURIComponent(storage) + '/content',
                        params: { content: 'vztmpl' },
                        method: 'GET',
                        success: function (answer) {
                            if (me.destroyed) {
                                return;
                            }
                            templates.setData(
                                (answer.result.data || []).filter((t) => /\/orbitlab-/.test(t.volid)),
                            );
                            me.down('#templates').setTitle(
                                Ext.String.format(
                                    gettext('Appliance templates on {0} (storage {1})'),
                                    Ext.htmlEncode(Proxmox.NodeName),
                                    Ext.htmlEncode(storage),
                                ),
                            );
                        },
                        failure: () => templates.removeAll(),
                    });
                },
                failure: () => templates.removeAll(),
            });
        };

        Ext.apply(me, {
            items: [
                {
                    xtype: 'grid',
                    title: gettext('Appliance containers'),
                    itemId: 'containers',
                    store: containers,
                    emptyText: gettext('No Sector has appliance containers yet.'),
                    deferEmptyText: false,
                    columns: [
                        { header: gettext('Sector'), dataIndex: 'sector', width: 120, renderer: Ext.htmlEncode },
                        { header: gettext('Role'), dataIndex: 'role', width: 90, renderer: Ext.htmlEncode },
                        { header: gettext('Node'), dataIndex: 'node', width: 90, renderer: Ext.htmlEncode },
                        { header: 'VMID', dataIndex: 'vmid', width: 80, renderer: Ext.htmlEncode },
                        { header: gettext('Version'), dataIndex: 'version', width: 90, renderer: Ext.htmlEncode },
                        {
                            header: gettext('Health'),
                            dataIndex: 'health',
                            width: 120,
                            renderer: (v) =>
                                v === 'healthy'
                                    ? '<i class="fa fa-check-circle good"></i> ' + gettext('healthy')
                                    : v
                                      ? '<i class="fa fa-times-circle critical"></i> ' + Ext.htmlEncode(v)
                                      : '-',
                        },
                        { header: gettext('Probed'), dataIndex: 'probed', flex: 1, renderer: Ext.htmlEncode },
                    ],
                },
                {
                    xtype: 'grid',
                    title: gettext('Appliance templates'),
                    itemId: 'templates',
                    store: templates,
                    emptyText: gettext('No OrbitLab appliance template on this node yet.'),
                    deferEmptyText: false,
                    columns: [
                        { header: gettext('Template'), dataIndex: 'volid', flex: 1, renderer: Ext.htmlEncode },
                        { header: gettext('Size'), dataIndex: 'size', width: 100, renderer: Proxmox.Utils.format_size },
                        {
                            header: gettext('Date'),
                            dataIndex: 'ctime',
                            width: 160,
                            renderer: Proxmox.Utils.render_timestamp,
                        },
                    ],
                },
                {
                    xtype: 'orbitlabObjects',
                    title: gettext('Appliance manifests'),
                    itemId: 'manifests',
                    path: '/appliances',
                    emptyText: gettext('None: the templates of this OrbitLab version are used.'),
                    deferEmptyText: false,
                    kindColumns: [
                        { part: 'spec', key: 'role', header: gettext('Role'), config: { width: 90 } },
                        { part: 'spec', key: 'version', header: gettext('Version'), config: { width: 80 } },
                        { part: 'spec', key: 'template', header: gettext('Template'), config: { flex: 1 } },
                    ],
                },
            ],
        });

        me.callParent();
        OrbitLab.Utils.monStoreErrors(me.down('#containers'), sectors);
        OrbitLab.Utils.refreshWhileShown(me, [sectors]);
        loadTemplates();
    },
});
