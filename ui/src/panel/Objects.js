/*
 * A read-mostly list of one kind of OrbitLab object with its status,
 * refreshed every few seconds: the Appliances, Certificates and SSH keys
 * views. 'kindColumns' add the kind's own fields: {part: 'spec' or
 * 'outputs', key, header}, or a whole column.
 */
Ext.define('OrbitLab.grid.Objects', {
    extend: 'Ext.grid.Panel',
    alias: 'widget.orbitlabObjects',

    // The collection ('/appliances').
    path: undefined,
    viewConfig: { trackOver: false },

    // A column reading spec[key] or the status's outputs[key].
    column: function (part, key, header, config) {
        return Ext.apply(
            {
                header: header,
                width: 130,
                renderer: function (value, meta, rec) {
                    let v = (rec.get(part) || {})[key];
                    if (v === undefined || v === null) {
                        return '-';
                    }
                    return Ext.htmlEncode(Ext.isObject(v) || Ext.isArray(v) ? JSON.stringify(v) : String(v));
                },
            },
            config,
        );
    },

    initComponent: function () {
        let me = this;
        let rstore = Ext.create('OrbitLab.data.UpdateStore', { path: me.path });
        let store = Ext.create('Proxmox.data.DiffStore', {
            rstore: rstore,
            sorters: 'name',
            autoDestroyRstore: true,
        });
        me.store = store;
        me.columns = [
            { header: gettext('Name'), dataIndex: 'name', width: 140, renderer: Ext.htmlEncode },
            {
                header: gettext('Status'),
                dataIndex: 'phase',
                width: 110,
                renderer: OrbitLab.Utils.render_phase,
            },
        ]
            .concat(me.kindColumns.map((c) => (c.renderer ? c : me.column(c.part, c.key, c.header, c.config))))
            .concat([{ header: gettext('Message'), dataIndex: 'message', flex: 1, renderer: Ext.htmlEncode }]);
        me.callParent();
        OrbitLab.Utils.monStoreErrors(me, rstore);
        OrbitLab.Utils.refreshWhileShown(me, [rstore], [store]);
    },
});
