/*
 * Set a new version of a vault secret. The value goes to the agent as the
 * request body (PUT /vault/values/{path}, application/octet-stream), never
 * in a URL; the field is a password field and is cleared when the window
 * closes. The panel never reads a value back unless someone asks for it
 * (Secrets view, "Reveal", which needs the privilege to read values).
 */
Ext.define('OrbitLab.window.SecretEdit', {
    extend: 'Ext.window.Window',
    alias: 'widget.orbitlabSecretEdit',

    title: gettext('Set secret value'),
    modal: true,
    width: 460,
    layout: 'fit',

    // The secret's path, or undefined for a new one.
    path: undefined,
    saved: Ext.emptyFn,

    initComponent: function () {
        let me = this;
        let isNew = me.path === undefined;
        Ext.apply(me, {
            items: {
                xtype: 'form',
                bodyPadding: 10,
                defaults: { anchor: '100%', labelWidth: 120 },
                items: [
                    {
                        xtype: 'textfield',
                        name: 'path',
                        fieldLabel: gettext('Path'),
                        value: me.path,
                        readOnly: !isNew,
                        allowBlank: false,
                        regex: /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/,
                    },
                    {
                        xtype: 'textfield',
                        inputType: 'password',
                        name: 'value',
                        fieldLabel: gettext('New value'),
                        allowBlank: false,
                    },
                    {
                        xtype: 'displayfield',
                        value: gettext('A new version is written; older versions stay until pruned.'),
                    },
                ],
            },
            buttons: [
                { text: gettext('Cancel'), handler: () => me.close() },
                {
                    text: gettext('Set'),
                    formBind: true,
                    handler: function () {
                        let form = me.down('form').getForm();
                        if (!form.isValid()) {
                            return;
                        }
                        let values = form.getValues();
                        OrbitLab.Utils.API2Request({
                            url: '/vault/values/' + values.path.split('/').map(encodeURIComponent).join('/'),
                            method: 'PUT',
                            rawData: values.value,
                            headers: { 'Content-Type': 'application/octet-stream' },
                            waitMsgTarget: me,
                            success: function () {
                                form.findField('value').reset();
                                me.saved();
                                me.close();
                            },
                            failure: function (response) {
                                Ext.Msg.alert(gettext('Error'), response.htmlStatus);
                            },
                        });
                    },
                },
            ],
        });
        me.callParent();
    },
});
